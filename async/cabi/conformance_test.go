package cabi

import (
	"context"
	"fmt"
	"testing"

	"github.com/volleyhq/volley/async"
	"github.com/volleyhq/volley/async/asynctest"
)

// TestBridgedProducerConforms runs the conformance kit's producer checks
// against a Go producer seen through the C ABI: async.Produce -> Forwarder
// -> C handler (Import) -> the kit's recording handler.
func TestBridgedProducerConforms(t *testing.T) {
	noCLeft(t)
	asynctest.RunProducerChecks(t, asynctest.Blocking(func(ctx context.Context, h async.Handler, spec asynctest.StreamSpec) error {
		return Produce(ctx, Import(h), spec.Source(), async.ProduceOptions{}, async.AcceptedDevices(h)...)
	}))
}

// TestBridgedHandlerConforms runs the kit's consumer checks against
// async.Reader seen through the C ABI: the kit's scripted producer ->
// Forwarder -> C handler (Import) -> Reader.
func TestBridgedHandlerConforms(t *testing.T) {
	noCLeft(t)
	for _, w := range []int{0, 1} {
		t.Run(fmt.Sprintf("window=%d", w), func(t *testing.T) {
			base := asynctest.ReaderHandler(async.ReaderOptions{Window: w})
			asynctest.RunHandlerChecks(t, func() asynctest.HandlerUnderTest {
				u := base()
				f, err := Forward(Import(u.Handler), async.AcceptedDevices(u.Handler)...)
				if err != nil {
					t.Fatal(err)
				}
				u.Handler = f
				return u
			})
		})
	}
}
