package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/volleyhq/volley/devicebuf"
)

const devicesHelp = `Usage: volley devices [--json]

Lists the devices a query's batches can land on: the CPU, and for every GPU its
pinned host memory (cuda_host:N) and its device memory (cuda:N), with free and
total memory, or why the device is unusable (no libcuda.so.1, no GPU, ...).
The names in the DEVICE column are what --device takes.

Flags:
  --json    print the inventory as JSON on stdout

Environment:
  VOLLEY_SIMULATED_GPUS=N   replace the CUDA driver by N simulated GPUs (device memory
                            that is not host readable; for trying placements without a GPU)

Examples:
  volley devices
  volley devices --json
  VOLLEY_SIMULATED_GPUS=2 volley devices

` + exitCodesHelp

// envSimulatedGPUs names the number of simulated GPUs that replace the
// CUDA driver.
const envSimulatedGPUs = "VOLLEY_SIMULATED_GPUS"

// newDevices returns the device manager the commands use: the CUDA driver,
// or simulated GPUs when $VOLLEY_SIMULATED_GPUS says so.
func newDevices() (*devicebuf.Manager, error) {
	opts := devicebuf.Options{}
	if v := os.Getenv(envSimulatedGPUs); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return nil, usagef("$%s=%q: want a number of GPUs", envSimulatedGPUs, v)
		}
		opts.Backends = []devicebuf.Backend{}
		if n > 0 {
			opts.Backends = append(opts.Backends, devicebuf.NewSimulated(devicebuf.SimOptions{Devices: n}))
		}
	}
	return devicebuf.NewManager(opts), nil
}

func runDevices(ctx context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("devices", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "JSON output")
	if err := parseFlags(e, fs, devicesHelp, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usagef("devices takes no arguments, got %q", strings.Join(fs.Args(), " "))
	}
	m, err := newDevices()
	if err != nil {
		return err
	}
	defer m.Close()
	inv := m.Inventory(ctx)
	if *asJSON {
		type dev struct {
			Device     string `json:"device"`
			Name       string `json:"name"`
			Usable     bool   `json:"usable"`
			Reason     string `json:"reason,omitempty"`
			FreeBytes  int64  `json:"free_bytes"`
			TotalBytes int64  `json:"total_bytes"`
			Simulated  bool   `json:"simulated,omitempty"`
		}
		out := make([]dev, 0, len(inv))
		for _, in := range inv {
			out = append(out, dev{in.Device.String(), in.Name, in.Usable, in.Reason, in.FreeBytes, in.TotalBytes, in.Simulated})
		}
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	fmt.Fprint(e.stdout, devicesTable(inv))
	return nil
}

// devicesTable renders the inventory.
func devicesTable(inv []devicebuf.Info) string {
	rows := [][]string{{"DEVICE", "NAME", "STATUS", "FREE", "TOTAL"}}
	for _, in := range inv {
		status := "usable"
		if !in.Usable {
			status = "unusable: " + shortReason(in.Reason)
		}
		name := in.Name
		if in.Simulated && !strings.Contains(strings.ToLower(name), "simulated") {
			name += " (simulated)"
		}
		mem := func(n int64) string {
			if n <= 0 {
				return "-"
			}
			return bytesText(n)
		}
		rows = append(rows, []string{in.Device.String(), name, status, mem(in.FreeBytes), mem(in.TotalBytes)})
	}
	width := make([]int, len(rows[0]))
	for _, r := range rows {
		for i, c := range r {
			width[i] = max(width[i], len(c))
		}
	}
	var b strings.Builder
	for _, r := range rows {
		// STATUS can be long (a CUDA error), so it goes last in print order.
		order := []int{0, 1, 3, 4, 2}
		for k, i := range order {
			c := r[i]
			if k == len(order)-1 {
				b.WriteString(c)
				break
			}
			b.WriteString(c + strings.Repeat(" ", width[i]-len(c)+2))
		}
		b.WriteString("\n")
	}
	return b.String()
}

// shortReason keeps the first clause of a long reason (the CUDA loader
// lists every path it tried); --json has the whole text.
func shortReason(r string) string {
	const max = 100
	if first, _, ok := strings.Cut(r, "; "); ok && len(r) > max {
		return first + "; …"
	}
	return r
}
