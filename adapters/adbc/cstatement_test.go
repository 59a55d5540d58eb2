package adbc

import (
	"context"
	"testing"

	goadbc "github.com/apache/arrow-adbc/go/adbc"
	"github.com/apache/arrow-go/v18/arrow"

	"github.com/volleyhq/volley/integration/duckdbtest"
)

// TestCStatement pins the reach into drivermgr's statement: the C
// statement is found, ExecuteSchema describes a query without running it
// (a query that fails when run describes fine), and StatementCancel is
// callable when nothing runs.
func TestCStatement(t *testing.T) {
	st := duckdbtest.Statement(t, ":memory:")
	cst := cStatementOf(st)
	if cst == nil {
		t.Fatal("cStatementOf(drivermgr statement) = nil: the drivermgr layout changed")
	}
	if err := st.SetSqlQuery("SELECT error('ran') AS e, 42::SMALLINT AS n"); err != nil {
		t.Fatal(err)
	}
	sc, err := cst.executeSchema()
	if err != nil {
		t.Fatalf("ExecuteSchema: %v", err)
	}
	if sc.NumFields() != 2 || sc.Field(1).Name != "n" || sc.Field(1).Type.ID() != arrow.INT16 {
		t.Errorf("schema %v", sc)
	}
	if err := cst.cancel(); err != nil {
		t.Errorf("StatementCancel: %v", err)
	}
	if _, _, err := st.ExecuteQuery(context.Background()); err == nil {
		// DuckDB may defer the error to the first batch; either way the
		// statement did run only now.
		t.Log("the error comes with the first batch")
	}
	// An error from ExecuteSchema carries the driver's status and message.
	if err := st.SetSqlQuery("SELECT * FROM no_such_table"); err == nil {
		if _, err := cst.executeSchema(); err == nil {
			t.Error("ExecuteSchema of a bad query succeeded")
		} else if e, ok := adbcError(err); !ok || e.Code == goadbc.StatusOK || e.Msg == "" {
			t.Errorf("ExecuteSchema error %#v", err)
		}
	}
	if cStatementOf(nil) != nil {
		t.Error("cStatementOf(nil) != nil")
	}
}
