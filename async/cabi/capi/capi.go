// Package capi implements the C API of include/volley/volley.h that needs
// the driver and device layers (volley_open, volley_query, ...), for the
// c-shared library in async/cabi/lib. It is apart from package cabi so that
// the bridge builds and tests on its own. Opaque C handles are boxes from
// [cabi.Box]; failures set the calling thread's last error
// ([cabi.SetLastError]) and return an errno code.
package capi

import (
	"context"
	"encoding/json"
	"unsafe"

	"github.com/volleyhq/volley/async"
	"github.com/volleyhq/volley/async/cabi"
	"github.com/volleyhq/volley/devicebuf"
	"github.com/volleyhq/volley/driver"
)

// LibOpen implements volley_open: the returned box holds a *driver.DB.
func LibOpen(driverName, dsn string) (unsafe.Pointer, int) {
	db, err := driver.Open(driverName, dsn)
	if err != nil {
		return nil, cabi.SetLastError(err)
	}
	b := cabi.Box(db)
	if b == nil {
		db.Close()
		return nil, cabi.SetLastError(async.ErrOutOfMemory)
	}
	return b, 0
}

// LibClose implements volley_close.
func LibClose(b unsafe.Pointer) {
	if b == nil {
		return
	}
	if db, ok := cabi.Unbox[*driver.DB](b); ok {
		db.Close()
	}
	cabi.FreeBox(b)
}

// QueryOptions are volley_query_options in Go.
type QueryOptions struct {
	Device                string
	Window                int64
	BatchBytes, BatchRows int64
	Accept                []async.DeviceType
}

// LibQuery implements volley_query: h receives exactly one release on every
// path. The returned box holds a *driver.Query.
func LibQuery(b unsafe.Pointer, sql string, o QueryOptions, h unsafe.Pointer) (unsafe.Pointer, int) {
	f, err := cabi.Forward(cabi.HandlerFromPtr(h), o.Accept...)
	if err != nil {
		cabi.ReleaseHandler(cabi.HandlerFromPtr(h))
		return nil, cabi.SetLastError(err)
	}
	db, ok := cabi.Unbox[*driver.DB](b)
	if !ok {
		f.Abort(cabi.ErrNilHandle)
		return nil, cabi.SetLastError(cabi.ErrNilHandle)
	}
	var opts []driver.QueryOption
	if o.Device != "" {
		opts = append(opts, driver.OnDevice(o.Device))
	}
	if o.Window > 0 {
		opts = append(opts, driver.WithWindow(int(o.Window)))
	}
	if o.BatchBytes > 0 {
		opts = append(opts, driver.WithBatchBytes(o.BatchBytes))
	}
	if o.BatchRows > 0 {
		opts = append(opts, driver.WithBatchRows(o.BatchRows))
	}
	q, err := db.Query(context.Background(), f, sql, nil, opts...)
	if err != nil {
		// The driver did not use the handler: end the stream here.
		f.Abort(err)
		return nil, cabi.SetLastError(err)
	}
	qb := cabi.Box(q)
	if qb == nil {
		q.Cancel()
		return nil, cabi.SetLastError(async.ErrOutOfMemory)
	}
	return qb, 0
}

// LibQueryCancel implements volley_query_cancel.
func LibQueryCancel(b unsafe.Pointer) int {
	q, ok := cabi.Unbox[*driver.Query](b)
	if !ok {
		return cabi.SetLastError(cabi.ErrNilHandle)
	}
	q.Cancel()
	return 0
}

// LibQueryWait implements volley_query_wait.
func LibQueryWait(b unsafe.Pointer) int {
	q, ok := cabi.Unbox[*driver.Query](b)
	if !ok {
		return cabi.SetLastError(cabi.ErrNilHandle)
	}
	return cabi.SetLastError(q.Wait())
}

// LibQueryFree implements volley_query_free.
func LibQueryFree(b unsafe.Pointer) {
	if b != nil {
		cabi.FreeBox(b)
	}
}

// deviceJSON is one device of volley_devices_json.
type deviceJSON struct {
	Device            string `json:"device"`
	Name              string `json:"name"`
	Usable            bool   `json:"usable"`
	Reason            string `json:"reason,omitempty"`
	FreeBytes         int64  `json:"free_bytes"`
	TotalBytes        int64  `json:"total_bytes"`
	UnifiedAddressing bool   `json:"unified_addressing,omitempty"`
	Simulated         bool   `json:"simulated,omitempty"`
}

// LibDevicesJSON implements volley_devices_json: a malloc'd C string.
func LibDevicesJSON() unsafe.Pointer {
	m := devicebuf.NewManager(devicebuf.Options{})
	defer m.Close()
	inv := m.Inventory(context.Background())
	out := make([]deviceJSON, 0, len(inv))
	for _, d := range inv {
		out = append(out, deviceJSON{Device: d.Device.String(), Name: d.Name, Usable: d.Usable, Reason: d.Reason,
			FreeBytes: d.FreeBytes, TotalBytes: d.TotalBytes, UnifiedAddressing: d.UnifiedAddressing, Simulated: d.Simulated})
	}
	j, err := json.Marshal(out)
	if err != nil {
		cabi.SetLastError(err)
		return nil
	}
	return cabi.CString(string(j))
}

// LibProduceDemoOn implements volley_produce_demo_on: the demo stream moved
// onto device (a device string: "cpu", "cuda_host:0", "cuda:0") by a
// devicebuf Manager, over the simulated GPU backend when simulated is set,
// else the CUDA driver.
func LibProduceDemoOn(batches, rows int64, device string, simulated bool, h unsafe.Pointer) int {
	ch := cabi.HandlerFromPtr(h)
	dev, err := async.ParseDevice(device)
	if err != nil {
		cabi.ReleaseHandler(ch)
		return cabi.SetLastError(err)
	}
	var opts devicebuf.Options
	if simulated {
		opts.Backends = []devicebuf.Backend{devicebuf.NewSimulated(devicebuf.SimOptions{})}
	}
	m := devicebuf.NewManager(opts)
	defer m.Close()
	ctx := context.Background()
	mv, err := m.Mover(ctx, dev, devicebuf.MoverOptions{})
	if err != nil {
		cabi.ReleaseHandler(ch)
		return cabi.SetLastError(err)
	}
	if c, ok := mv.(interface{ Close() error }); ok {
		defer c.Close()
	}
	if rows < 0 {
		rows = 0
	}
	err = cabi.Produce(ctx, ch, &cabi.DemoSource{Batches: batches, Rows: rows},
		async.ProduceOptions{Mover: mv, AdditionalMetadata: cabi.DemoMetadata}, dev.Type)
	return cabi.SetLastError(err)
}
