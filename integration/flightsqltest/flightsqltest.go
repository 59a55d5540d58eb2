// Package flightsqltest runs a Flight SQL server in-process for tests:
// arrow-go's example SQLite server (pure Go, modernc.org/sqlite) on
// 127.0.0.1 at a random port, stopped in t.Cleanup.
//
// Statement results are split into several endpoints (Options.Endpoints),
// so clients see a partitioned result: endpoint i of n carries the i-th
// contiguous slice of the rows, in the query's order, and concatenating the
// endpoints in order gives the whole result. Every FlightInfo carries the
// result's schema (ADBC's Flight SQL driver v1.12 panics on a FlightInfo
// with two or more endpoints and no schema), and GetSchemaStatement is
// answered, so ExecuteSchema works. Options.FailAfterRows makes every
// endpoint's stream fail part-way, for mid-stream error tests.
//
// Markers in a query's text change how the server treats it:
//
//	/*volley:stream*/        one endpoint, streamed without counting the
//	                         rows first (for endless queries)
//	/*volley:stall*/         one endpoint whose stream sends nothing and
//	                         blocks until the client goes away
//	/*volley:fail_after=N*/  every endpoint's stream sends exactly its first
//	                         N rows, then fails with an Internal error
package flightsqltest

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/flight/flightsql"
	"github.com/apache/arrow-go/v18/arrow/flight/flightsql/example"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Options configure [Start]. The zero value serves one endpoint per
// result and a "numbers" table of 1000 rows.
type Options struct {
	// Endpoints is the number of endpoints a statement result is split
	// into (default 1); a result with fewer rows gets one per row, and an
	// empty one a single empty endpoint.
	Endpoints int
	// Rows is the row count of the "numbers" table the server starts with:
	// numbers(id INTEGER, name TEXT, x REAL) with id 1..Rows, name 'n<id>'
	// and x id/4.0 (default 1000; negative: no table).
	Rows int
	// FailAfterRows, when positive, makes every endpoint's stream fail
	// with an Internal error once it has sent exactly that many rows.
	FailAfterRows int64
	// OmitSchema leaves the schema out of statement FlightInfos, as some
	// servers do (ADBC's Flight SQL driver v1.12 cannot read such a result
	// with two or more endpoints).
	OmitSchema bool
	// Alloc allocates the server's batches (default
	// memory.DefaultAllocator). Beware that arrow-go v18.9's Flight SQL
	// server leaks the batch whose write fails when a client goes away
	// mid-stream (flightSqlServer.DoGet returns without releasing it), so
	// a checked allocator here reports leaks in tests that cancel streams.
	Alloc memory.Allocator
}

// Server is a running test server.
type Server struct {
	// URI is the server's address for Flight SQL clients
	// (grpc+tcp://127.0.0.1:port).
	URI string
	// DB is the server's SQLite database; tests may add tables.
	DB *sql.DB
	// DoGets counts the endpoint streams served.
	DoGets atomic.Int64

	stop func()
	wg   sync.WaitGroup // the stream goroutines, which Close waits for
}

var seq atomic.Int64

// Start starts a server; t.Cleanup stops it and closes its database. Any
// failure fails t.
func Start(t testing.TB, o Options) *Server {
	t.Helper()
	s, err := start(o)
	if err != nil {
		t.Fatalf("flightsqltest: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

func start(o Options) (*Server, error) {
	if o.Endpoints <= 0 {
		o.Endpoints = 1
	}
	if o.Rows == 0 {
		o.Rows = 1000
	}
	if o.Alloc == nil {
		o.Alloc = memory.DefaultAllocator
	}
	db, err := sql.Open("sqlite", fmt.Sprintf("file:volley-flightsqltest-%d?mode=memory&cache=shared", seq.Add(1)))
	if err != nil {
		return nil, err
	}
	// One connection keeps the shared-cache database alive and serialises
	// access; the tests' data is small.
	db.SetMaxOpenConns(1)
	if o.Rows > 0 {
		_, err := db.Exec(`CREATE TABLE numbers (id INTEGER, name TEXT, x REAL);
			WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < ?)
			INSERT INTO numbers SELECT i, 'n' || i, i / 4.0 FROM c`, o.Rows)
		if err != nil {
			db.Close()
			return nil, fmt.Errorf("create numbers: %w", err)
		}
	}
	inner, err := example.NewSQLiteFlightSQLServer(db)
	if err != nil {
		db.Close()
		return nil, err
	}
	inner.Alloc = o.Alloc
	s := &Server{DB: db}
	srv := flight.NewServerWithMiddleware(nil)
	srv.RegisterFlightService(flightsql.NewFlightServer(&server{SQLiteFlightSQLServer: inner, o: o, s: s}))
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		db.Close()
		return nil, err
	}
	srv.InitListener(lis)
	s.URI = "grpc+tcp://" + lis.Addr().String()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve()
	}()
	s.stop = func() {
		srv.Shutdown()
		<-done
		s.wg.Wait() // streams whose client went away may still be draining
		db.Close()
	}
	return s, nil
}

// Close stops the server (waiting for open streams to end) and closes its
// database. Start arranges it; it is idempotent.
func (s *Server) Close() {
	if s.stop != nil {
		s.stop()
		s.stop = nil
	}
}

// handle is the statement handle of one endpoint: the query and the row
// range [Lo, Hi) of the result it serves (Hi < 0: no bound), its failure
// point (Fail > 0) and whether it stalls.
type handle struct {
	Q      string `json:"q"`
	Lo, Hi int64
	Fail   int64
	Stall  bool
}

// markers reads the query's markers.
func markers(q string) (stream, stall bool, fail int64) {
	stream = strings.Contains(q, "/*volley:stream*/")
	stall = strings.Contains(q, "/*volley:stall*/")
	if _, rest, ok := strings.Cut(q, "/*volley:fail_after="); ok {
		if n, _, ok := strings.Cut(rest, "*/"); ok {
			fail, _ = strconv.ParseInt(n, 10, 64)
		}
	}
	return stream || stall, stall, fail
}

// server wraps the example server: statements are split into endpoints.
type server struct {
	*example.SQLiteFlightSQLServer
	o Options
	s *Server
}

// innerTicket is the example server's own statement handle for a query
// outside a transaction.
type innerTicket []byte

func (t innerTicket) GetStatementHandle() []byte { return t }

func innerHandle(q string) innerTicket { return innerTicket(":" + q) }

// scan runs q once for its schema and row count.
func (s *server) scan(ctx context.Context, q string) (*arrow.Schema, int64, error) {
	schema, ch, err := s.SQLiteFlightSQLServer.DoGetStatement(ctx, innerHandle(q))
	if err != nil {
		return nil, 0, err
	}
	var n int64
	var first error
	for c := range ch {
		if c.Err != nil && first == nil {
			first = c.Err
		}
		if c.Data != nil {
			n += c.Data.NumRows()
			c.Data.Release()
		}
	}
	return schema, n, first
}

// GetFlightInfoStatement splits q's result into endpoints.
func (s *server) GetFlightInfoStatement(ctx context.Context, cmd flightsql.StatementQuery, desc *flight.FlightDescriptor) (*flight.FlightInfo, error) {
	if len(cmd.GetTransactionId()) > 0 {
		return s.SQLiteFlightSQLServer.GetFlightInfoStatement(ctx, cmd, desc)
	}
	q := cmd.GetQuery()
	stream, stall, fail := markers(q)
	if fail == 0 {
		fail = s.o.FailAfterRows
	}
	if stream {
		schema, err := s.schemaOf(ctx, q)
		if err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "%v", err)
		}
		h, _ := json.Marshal(handle{Q: q, Hi: -1, Fail: fail, Stall: stall})
		tkt, err := flightsql.CreateStatementQueryTicket(h)
		if err != nil {
			return nil, err
		}
		return &flight.FlightInfo{
			Schema:           flight.SerializeSchema(schema, s.Alloc),
			FlightDescriptor: desc, TotalRecords: -1, TotalBytes: -1,
			Endpoint: []*flight.FlightEndpoint{{Ticket: &flight.Ticket{Ticket: tkt}}},
		}, nil
	}
	schema, n, err := s.scan(ctx, q)
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "%v", err)
	}
	parts := int64(max(1, min(s.o.Endpoints, int(n))))
	per := (n + parts - 1) / parts
	info := &flight.FlightInfo{
		Schema:           flight.SerializeSchema(schema, s.Alloc),
		FlightDescriptor: desc,
		TotalRecords:     n,
		TotalBytes:       -1,
		Ordered:          true,
	}
	if s.o.OmitSchema {
		info.Schema = nil
	}
	for i := range parts {
		h, _ := json.Marshal(handle{Q: q, Lo: min(n, i*per), Hi: min(n, (i+1)*per), Fail: fail})
		tkt, err := flightsql.CreateStatementQueryTicket(h)
		if err != nil {
			return nil, err
		}
		info.Endpoint = append(info.Endpoint, &flight.FlightEndpoint{Ticket: &flight.Ticket{Ticket: tkt}})
	}
	return info, nil
}

// schemaOf returns q's schema without reading its rows.
func (s *server) schemaOf(ctx context.Context, q string) (*arrow.Schema, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	schema, ch, err := s.SQLiteFlightSQLServer.DoGetStatement(ctx, innerHandle(q))
	if err != nil {
		return nil, err
	}
	cancel()
	for c := range ch {
		if c.Data != nil {
			c.Data.Release()
		}
	}
	return schema, nil
}

// GetSchemaStatement answers ExecuteSchema.
func (s *server) GetSchemaStatement(ctx context.Context, cmd flightsql.StatementQuery, desc *flight.FlightDescriptor) (*flight.SchemaResult, error) {
	schema, err := s.schemaOf(ctx, cmd.GetQuery())
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "%v", err)
	}
	return &flight.SchemaResult{Schema: flight.SerializeSchema(schema, s.Alloc)}, nil
}

// DoGetStatement serves one endpoint: its slice of the query's rows.
func (s *server) DoGetStatement(ctx context.Context, cmd flightsql.StatementQueryTicket) (*arrow.Schema, <-chan flight.StreamChunk, error) {
	var h handle
	if err := json.Unmarshal(cmd.GetStatementHandle(), &h); err != nil {
		return s.SQLiteFlightSQLServer.DoGetStatement(ctx, cmd)
	}
	s.s.DoGets.Add(1)
	if h.Stall {
		schema, err := s.schemaOf(ctx, h.Q)
		if err != nil {
			return nil, nil, err
		}
		out := make(chan flight.StreamChunk)
		s.s.wg.Add(1)
		go func() {
			defer s.s.wg.Done()
			defer close(out)
			<-ctx.Done()
		}()
		return schema, out, nil
	}
	ictx, stop := context.WithCancel(ctx)
	schema, in, err := s.SQLiteFlightSQLServer.DoGetStatement(ictx, innerHandle(h.Q))
	if err != nil {
		stop()
		return nil, nil, err
	}
	hi := h.Hi
	if h.Fail > 0 && (hi < 0 || h.Lo+h.Fail < hi) {
		hi = h.Lo + h.Fail
	}
	out := make(chan flight.StreamChunk)
	s.s.wg.Add(1)
	go func() {
		defer s.s.wg.Done()
		defer close(out)
		defer stop()
		var off, sent int64
		failed := false // or done: the rest of the inner stream is dropped
		for c := range in {
			if failed {
				if c.Data != nil {
					c.Data.Release()
				}
				continue
			}
			if c.Err != nil || c.Data == nil {
				failed = !send(ctx, out, c)
				continue
			}
			rec := c.Data
			rows := rec.NumRows()
			lo, end := max(h.Lo-off, 0), rows
			if hi >= 0 {
				end = min(hi-off, rows)
			}
			off += rows
			if lo < end {
				slice := rec.NewSlice(lo, end)
				if !send(ctx, out, flight.StreamChunk{Data: slice}) {
					rec.Release()
					failed = true
					continue
				}
				sent += end - lo
			}
			rec.Release()
			if h.Fail > 0 && sent >= h.Fail {
				send(ctx, out, flight.StreamChunk{Err: status.Error(codes.Internal, "flightsqltest: injected failure after "+fmt.Sprint(sent)+" rows")})
				failed = true
			}
			if failed || (hi >= 0 && off >= hi) {
				failed = true
				stop() // the inner query's remaining rows are not needed
			}
		}
	}()
	return schema, out, nil
}

// send delivers c, or releases it when the stream's ctx ended.
func send(ctx context.Context, out chan<- flight.StreamChunk, c flight.StreamChunk) bool {
	select {
	case out <- c:
		return true
	case <-ctx.Done():
		if c.Data != nil {
			c.Data.Release()
		}
		return false
	}
}
