package asynctest

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/volleyhq/volley/async"
)

// TB is the part of testing.TB the checks use; *testing.T satisfies it.
// Fatalf must not return (testing.T's ends the goroutine).
type TB interface {
	Helper()
	Errorf(format string, args ...any)
	Fatalf(format string, args ...any)
	Logf(format string, args ...any)
}

// Failure is one failed assertion of a check, as [CheckProducer] and
// [CheckHandler] report it.
type Failure struct {
	// Check is the check's name, which starts with its rule ID
	// ("N2_DemandBounded").
	Check string
	// Message says what was wrong.
	Message string
}

// String returns "Check: Message".
func (f Failure) String() string { return f.Check + ": " + f.Message }

// Timeout bounds every wait of a check (for Release, for the producer to
// return): a producer or consumer that hangs fails the check after it.
const Timeout = 10 * time.Second

// timeout is Timeout; the kit's own tests shorten it.
var timeout = Timeout

// recorder is a TB that collects failures.
type recorder struct {
	check string
	mu    sync.Mutex
	fails []Failure
}

func (r *recorder) Helper()             {}
func (r *recorder) Logf(string, ...any) {}
func (r *recorder) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fails = append(r.fails, Failure{Check: r.check, Message: fmt.Sprintf(format, args...)})
}
func (r *recorder) Fatalf(format string, args ...any) {
	r.Errorf(format, args...)
	runtime.Goexit()
}

// runRecorded runs fn against a recorder on its own goroutine (so that
// Fatalf can end it) and returns the failures.
func runRecorded(name string, fn func(TB)) []Failure {
	r := &recorder{check: name}
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(r)
	}()
	<-done
	return r.fails
}

// Kind is the shape of the stream a [ProducerFactory] is asked for.
type Kind int

// The stream shapes of a [StreamSpec].
const (
	// Finite: Batches batches (at least one row each), then end of stream.
	Finite Kind = iota
	// Endless: batches for as long as there is demand, never an end.
	Endless
	// Stalled: the schema, then no batch and no end: the source blocks
	// until the stream is cancelled.
	Stalled
	// FailAfter: Batches batches, then an error.
	FailAfter
	// FailSchema: an error before the schema.
	FailSchema
)

// String returns the kind's name ("Finite", ...).
func (k Kind) String() string {
	return [...]string{"Finite", "Endless", "Stalled", "FailAfter", "FailSchema"}[k]
}

// StreamSpec says what stream a [ProducerFactory] must produce.
type StreamSpec struct {
	Kind Kind
	// Batches is the number of batches for Finite and FailAfter.
	Batches int
	// Rows is the number of rows per batch (at least 1); factories that
	// cannot control it may use any positive number.
	Rows int
	// Alloc is the allocator the batches should come from: the checks
	// assert it is back to zero at the end. A factory that cannot use it
	// leaves it alone (the memory assertions then see nothing).
	Alloc memory.Allocator
}

// Source returns a scripted [Source] yielding the stream spec describes.
func (s StreamSpec) Source() *Source {
	src := &Source{Alloc: s.Alloc, Batches: s.Batches, Rows: max(s.Rows, 1)}
	switch s.Kind {
	case Endless:
		src.Batches = -1
	case Stalled:
		src.BlockAt = 1
	case FailAfter:
		src.FailAt = s.Batches + 1
		src.Err = async.Errorf(async.EIO, "%w after %d batches", ErrScripted, s.Batches)
	case FailSchema:
		src.SchemaErr = async.Errorf(async.EIO, "%w before the schema", ErrScripted)
	}
	return src
}

// ProducerFactory starts a producer that streams spec's stream to h and
// returns at once with a wait function, which blocks until the producer
// is done (after h's Release returned) and returns the producer's result
// (for Volley's runtime, what [async.Produce] returns; nil for a clean end
// of stream). The producer must stop when ctx ends. Go producers, the C
// bridge (a C producer driving h) and the driver layer (a query streamed
// to h) all fit: see [Blocking] and [ProduceFactory].
type ProducerFactory func(ctx context.Context, h async.Handler, spec StreamSpec) (wait func() error)

// Blocking adapts a producer entry point that blocks until the stream is
// over (like [async.Produce]) into a [ProducerFactory].
func Blocking(run func(ctx context.Context, h async.Handler, spec StreamSpec) error) ProducerFactory {
	return func(ctx context.Context, h async.Handler, spec StreamSpec) func() error {
		done := make(chan error, 1)
		go func() { done <- run(ctx, h, spec) }()
		var once sync.Once
		var err error
		return func() error {
			once.Do(func() { err = <-done })
			return err
		}
	}
}

// ProduceFactory is the [ProducerFactory] of [async.Produce] over
// spec.Source() with opts.
func ProduceFactory(opts async.ProduceOptions) ProducerFactory {
	return Blocking(func(ctx context.Context, h async.Handler, spec StreamSpec) error {
		return async.Produce(ctx, h, spec.Source(), opts)
	})
}

// ruleOf returns the rule ID a check name starts with.
func ruleOf(name string) string {
	id, _, _ := strings.Cut(name, "_")
	return id
}
