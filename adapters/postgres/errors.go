package postgres

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/volleyhq/volley/async"
)

// Metadata keys of the [*async.Error] made from a server error.
const (
	MetaSQLState = "pg.sqlstate"
	MetaSeverity = "pg.severity"
	MetaMessage  = "pg.message"
	MetaDetail   = "pg.detail"
	MetaHint     = "pg.hint"
	MetaPosition = "pg.position"
	MetaSchema   = "pg.schema"
	MetaTable    = "pg.table"
	MetaColumn   = "pg.column"
)

// codeOfState maps a SQLSTATE to an errno code.
func codeOfState(state string) async.Errno {
	switch {
	case state == "57014": // query_canceled
		return async.ECANCELED
	case state == "53200": // out_of_memory
		return async.ENOMEM
	case state == "42501", strings.HasPrefix(state, "28"): // privilege, authorization
		return async.EPERM
	case strings.HasPrefix(state, "0A"): // feature_not_supported
		return async.ENOTSUP
	case state == "22003", state == "22008", strings.HasPrefix(state, "54"): // out of range, program limits
		return async.EOVERFLOW
	case strings.HasPrefix(state, "42"), strings.HasPrefix(state, "22"), strings.HasPrefix(state, "23"),
		strings.HasPrefix(state, "07"), strings.HasPrefix(state, "34"), strings.HasPrefix(state, "3D"),
		strings.HasPrefix(state, "3F"), strings.HasPrefix(state, "26"):
		// syntax, undefined objects, data exceptions, constraints, wrong
		// parameters, unknown cursor/database/schema/statement
		return async.EINVAL
	case strings.HasPrefix(state, "40"), strings.HasPrefix(state, "55"), strings.HasPrefix(state, "53"):
		return async.EAGAIN // serialization, lock, resources: retry
	case strings.HasPrefix(state, "08"), strings.HasPrefix(state, "57"), strings.HasPrefix(state, "XX"):
		return async.EIO // connection, operator intervention, internal
	}
	return async.EIO
}

// wrapErr turns a pgconn error into the adapter's error form: a server
// error becomes an [*async.Error] with a code from its SQLSTATE, the
// SQLSTATE, severity, message and detail in Metadata, and the
// *pgconn.PgError as Err; other errors are wrapped with the prefix. pgconn
// redacts passwords from its own errors.
func wrapErr(what string, err error) error {
	if err == nil {
		return nil
	}
	var ae *async.Error
	if errors.As(err, &ae) {
		return err
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		keys := []string{MetaSQLState, MetaSeverity, MetaMessage}
		vals := []string{pe.Code, pe.Severity, pe.Message}
		add := func(k, v string) {
			if v != "" {
				keys, vals = append(keys, k), append(vals, v)
			}
		}
		add(MetaDetail, pe.Detail)
		add(MetaHint, pe.Hint)
		if pe.Position != 0 {
			add(MetaPosition, strconv.Itoa(int(pe.Position)))
		}
		add(MetaSchema, pe.SchemaName)
		add(MetaTable, pe.TableName)
		add(MetaColumn, pe.ColumnName)
		msg := fmt.Sprintf("postgres: %s: %s: %s (SQLSTATE %s)", what, pe.Severity, pe.Message, pe.Code)
		if pe.Detail != "" {
			msg += "; detail: " + pe.Detail
		}
		return &async.Error{Code: codeOfState(pe.Code), Message: msg, Metadata: arrow.NewMetadata(keys, vals), Err: err}
	}
	return fmt.Errorf("postgres: %s: %w", what, err)
}

// sqlState returns err's SQLSTATE, or "".
func sqlState(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}
