package asynctest_test

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/volleyhq/volley/async"
	"github.com/volleyhq/volley/async/asynctest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestProduceConforms runs every producer check against the runtime.
func TestProduceConforms(t *testing.T) {
	asynctest.RunProducerChecks(t, asynctest.ProduceFactory(async.ProduceOptions{}))
}
