package asynctest_test

import (
	"fmt"
	"regexp"
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

// TestReaderConforms runs every consumer check against async.Reader, with
// the default window and with a window of 1.
func TestReaderConforms(t *testing.T) {
	for _, w := range []int{0, 1} {
		t.Run(fmt.Sprintf("window=%d", w), func(t *testing.T) {
			asynctest.RunHandlerChecks(t, asynctest.ReaderHandler(async.ReaderOptions{Window: w}))
		})
	}
}

// TestCheckNamesStartWithRuleIDs keeps every check named for a rule (or the
// idle-cost measurement) and every C-only rule explained.
func TestCheckNamesStartWithRuleIDs(t *testing.T) {
	names := append(asynctest.ProducerCheckNames(), asynctest.HandlerCheckNames()...)
	if len(names) < 30 {
		t.Fatalf("only %d checks", len(names))
	}
	re := regexp.MustCompile(`^([A-Z]{1,2}[0-9]|IdleCost)_[A-Za-z0-9]+$`)
	for _, n := range names {
		if !re.MatchString(n) {
			t.Errorf("check %q is not named RULE_Description", n)
		}
	}
	for _, id := range asynctest.CRuleIDs() {
		if asynctest.CRuleReason(id) == "" {
			t.Errorf("C rule %s has no reason", id)
		}
	}
	if asynctest.CRuleReason("N2") != "" {
		t.Errorf("N2 is checked in Go, not C-only")
	}
}
