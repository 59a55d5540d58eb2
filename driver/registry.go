package driver

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
)

var (
	driversMu sync.RWMutex
	drivers   = make(map[string]Driver)
)

// Register makes a driver available under name. It panics if d is nil or a
// driver is already registered under name; adapters call it from init.
func Register(name string, d Driver) {
	driversMu.Lock()
	defer driversMu.Unlock()
	if d == nil {
		panic("driver: Register driver is nil")
	}
	if name == "" {
		panic("driver: Register called with an empty name")
	}
	if _, dup := drivers[name]; dup {
		panic("driver: Register called twice for driver " + name)
	}
	drivers[name] = d
}

// Drivers returns the names of the registered drivers, sorted.
func Drivers() []string {
	driversMu.RLock()
	defer driversMu.RUnlock()
	names := make([]string, 0, len(drivers))
	for n := range drivers {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// lookup returns the driver registered under name, or an error that lists
// the known drivers.
func lookup(name string) (Driver, error) {
	driversMu.RLock()
	d, ok := drivers[name]
	driversMu.RUnlock()
	if ok {
		return d, nil
	}
	known := Drivers()
	list := "none"
	if len(known) > 0 {
		list = strings.Join(slices.Clip(known), ", ")
	}
	return nil, fmt.Errorf("%w: unknown driver %q (forgotten import?); known: %s", ErrUnknownDriver, name, list)
}
