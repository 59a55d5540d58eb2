package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/volleyhq/volley/async"
	"github.com/volleyhq/volley/driver"
)

// Estimate asks the planner (EXPLAIN (FORMAT JSON), nothing executed) for
// the result's row count and width; Bytes is rows × width. It is only run
// when called.
func (c *Conn) Estimate(ctx context.Context, req *driver.Request) (driver.Estimate, error) {
	if !copyable(req.SQL) {
		return driver.Estimate{}, fmt.Errorf("%w: postgres: no estimate for this statement", errors.ErrUnsupported)
	}
	s := &source{c: c, sql: "EXPLAIN (FORMAT JSON) " + req.SQL, args: req.Args}
	sd, err := c.pg.Prepare(ctx, "", s.sql, nil)
	if err != nil {
		return driver.Estimate{}, wrapErr("estimate", err)
	}
	s.paramOIDs = sd.ParamOIDs
	vals, formats, err := s.encodeArgs()
	if err != nil {
		return driver.Estimate{}, err
	}
	res := c.pg.ExecParams(ctx, s.sql, vals, s.paramOIDs, formats, nil).Read()
	if res.Err != nil {
		return driver.Estimate{}, wrapErr("estimate", res.Err)
	}
	if len(res.Rows) != 1 || len(res.Rows[0]) != 1 {
		return driver.Estimate{}, fmt.Errorf("%w: postgres: unexpected EXPLAIN output", async.ErrProtocol)
	}
	var plan []struct {
		Plan struct {
			Rows  float64 `json:"Plan Rows"`
			Width float64 `json:"Plan Width"`
		} `json:"Plan"`
	}
	if err := json.Unmarshal(res.Rows[0][0], &plan); err != nil || len(plan) != 1 {
		return driver.Estimate{}, fmt.Errorf("%w: postgres: unexpected EXPLAIN output", async.ErrProtocol)
	}
	rows := int64(plan[0].Plan.Rows)
	return driver.Estimate{Rows: rows, Bytes: rows * int64(plan[0].Plan.Width)}, nil
}
