package cabi_test

import (
	"context"
	"fmt"

	"github.com/volleyhq/volley/async"
	"github.com/volleyhq/volley/async/cabi"
)

// A Go producer streaming through the C ABI into a Go consumer: Produce
// drives a C ArrowAsyncDeviceStreamHandler; here that handler comes from
// Import, so the batches cross the boundary twice. A C consumer would pass
// its own handler (from C, through the c-shared library's
// volley_produce_demo or volley_query).
func Example() {
	ctx := context.Background()
	r := async.NewReader(async.ReaderOptions{Window: 2})
	done := make(chan error, 1)
	go func() {
		done <- cabi.Produce(ctx, cabi.Import(r), &cabi.DemoSource{Batches: 3, Rows: 4}, async.ProduceOptions{})
	}()
	for b, err := range r.All(ctx) {
		if err != nil {
			fmt.Println("error:", err)
			break
		}
		fmt.Println(b.Device, b.NumRows, b.Record.Column(1))
		b.Release()
	}
	fmt.Println("produce:", <-done)
	// Output:
	// cpu 4 ["r0" "r1" "r2" "r3"]
	// cpu 4 ["r4" "r5" "r6" "r7"]
	// cpu 4 ["r8" "r9" "r10" "r11"]
	// produce: <nil>
}
