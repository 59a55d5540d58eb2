package flightsqltest

import (
	"context"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/flight/flightsql"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func client(t *testing.T, s *Server) *flightsql.Client {
	t.Helper()
	cl, err := flightsql.NewClient(strings.TrimPrefix(s.URI, "grpc+tcp://"), nil, nil,
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	return cl
}

// read returns the first int64 column of an endpoint's stream, and its
// error.
func read(t *testing.T, cl *flightsql.Client, ep *flight.FlightEndpoint) ([]int64, error) {
	t.Helper()
	rdr, err := cl.DoGet(context.Background(), ep.Ticket)
	if err != nil {
		return nil, err
	}
	defer rdr.Release()
	var out []int64
	for rdr.Next() {
		out = append(out, rdr.RecordBatch().Column(0).(*array.Int64).Int64Values()...)
	}
	return out, rdr.Err()
}

func TestEndpoints(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	s := Start(t, Options{Endpoints: 4, Rows: 2500})
	cl := client(t, s)
	info, err := cl.Execute(context.Background(), "SELECT id, name FROM numbers ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	if len(info.Endpoint) != 4 || info.TotalRecords != 2500 {
		t.Fatalf("%d endpoints, %d records", len(info.Endpoint), info.TotalRecords)
	}
	sc, err := flight.DeserializeSchema(info.Schema, mem)
	if err != nil || sc.NumFields() != 2 {
		t.Fatalf("schema %v, %v", sc, err)
	}
	next := int64(1)
	for i, ep := range info.Endpoint {
		got, err := read(t, cl, ep)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) == 0 || len(got) > 625 {
			t.Errorf("endpoint %d: %d rows", i, len(got))
		}
		for _, v := range got {
			if v != next {
				t.Fatalf("endpoint %d: id %d, want %d", i, v, next)
			}
			next++
		}
	}
	if next != 2501 {
		t.Errorf("%d rows in all", next-1)
	}
	if s.DoGets.Load() != 4 {
		t.Errorf("DoGets = %d", s.DoGets.Load())
	}
}

func TestMarkers(t *testing.T) {
	s := Start(t, Options{Endpoints: 3, Rows: 100})
	cl := client(t, s)
	info, err := cl.Execute(context.Background(), "/*volley:fail_after=7*/ SELECT id FROM numbers ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	got, err := read(t, cl, info.Endpoint[0])
	if err == nil || !strings.Contains(err.Error(), "injected failure") || len(got) != 7 {
		t.Fatalf("fail_after: %d rows, %v", len(got), err)
	}
	info, err = cl.Execute(context.Background(), "/*volley:stream*/ WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c) SELECT i FROM c")
	if err != nil {
		t.Fatal(err)
	}
	if len(info.Endpoint) != 1 || info.TotalRecords != -1 || len(info.Schema) == 0 {
		t.Fatalf("stream: %d endpoints, %d records", len(info.Endpoint), info.TotalRecords)
	}
	// read a few batches of the endless stream, then go away
	ctx, cancel := context.WithCancel(context.Background())
	rdr, err := cl.DoGet(ctx, info.Endpoint[0].Ticket)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if !rdr.Next() {
			t.Fatalf("endless stream ended: %v", rdr.Err())
		}
	}
	cancel()
	rdr.Release()
	info, err = cl.Execute(context.Background(), "SELECT id FROM numbers")
	if err != nil || len(info.Endpoint) != 3 {
		t.Fatalf("after: %v, %d endpoints", err, len(info.Endpoint))
	}
}
