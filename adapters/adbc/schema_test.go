package adbc_test

import (
	"context"
	"errors"
	"testing"

	goadbc "github.com/apache/arrow-adbc/go/adbc"
	"github.com/apache/arrow-adbc/go/adbc/drivermgr"
	"github.com/apache/arrow-go/v18/arrow"

	"github.com/volleyhq/volley/adapters/adbc"
	"github.com/volleyhq/volley/integration/duckdbtest"
)

// describingDB's statements describe their result as schema, whatever the
// query (a driver whose ExecuteSchema disagrees with its results).
type describingDB struct {
	goadbc.Database
	schema *arrow.Schema
}

func (d describingDB) Open(ctx context.Context) (goadbc.Connection, error) {
	c, err := d.Database.Open(ctx)
	return describingConn{c, d.schema}, err
}

type describingConn struct {
	goadbc.Connection
	schema *arrow.Schema
}

func (c describingConn) NewStatement() (goadbc.Statement, error) {
	s, err := c.Connection.NewStatement()
	return describingStmt{s, c.schema}, err
}

type describingStmt struct {
	goadbc.Statement
	schema *arrow.Schema
}

func (s describingStmt) ExecuteSchema(context.Context) (*arrow.Schema, error) { return s.schema, nil }

// TestDescribedSchema: batches carry exactly the schema OnSchema gave
// (N6) when the driver's results differ from its description only in
// metadata or nullability, and a result of another shape is an error
// wrapping ErrSchemaMismatch.
func TestDescribedSchema(t *testing.T) {
	db, err := drivermgr.Driver{}.NewDatabase(map[string]string{
		"driver": duckdbtest.DriverPath(t), "entrypoint": adbc.DuckDBEntryPoint, "path": ":memory:"})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	md := arrow.NewMetadata([]string{"described"}, []string{"yes"})
	same := arrow.NewSchema([]arrow.Field{{Name: "a", Type: arrow.PrimitiveTypes.Int64, Nullable: false}}, &md)
	other := arrow.NewSchema([]arrow.Field{{Name: "a", Type: arrow.BinaryTypes.String, Nullable: true}}, nil)

	conn := connect(t, adbc.NewConnector(describingDB{db, same}, adbc.Config{}))
	res := mustQuery(t, conn, "SELECT i::BIGINT AS a FROM range(5000) t(i)")
	if !res.schema.Equal(same) {
		t.Fatalf("OnSchema got %v", res.schema)
	}
	for _, b := range res.batches {
		if !b.Schema().Equal(same) {
			t.Fatalf("batch schema %v, want the described %v", b.Schema(), same)
		}
	}

	conn = connect(t, adbc.NewConnector(describingDB{db, other}, adbc.Config{}))
	res = query(t, conn, "SELECT 1::BIGINT AS a")
	if !errors.Is(res.prodErr, adbc.ErrSchemaMismatch) {
		t.Fatalf("Produce = %v, want ErrSchemaMismatch", res.prodErr)
	}
}
