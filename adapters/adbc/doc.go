// Package adbc makes any ADBC driver a Volley driver: Go drivers (an
// adbc.Driver value, such as the Flight SQL driver) and C drivers loaded
// from a shared object through the ADBC driver manager (such as DuckDB's).
//
// # Typed configuration
//
// Go callers describe the database with a [Config] and open it with
// [Config.Connector] (or hand over a database they opened themselves with
// [NewConnector], or a driver value with [FromDriver]); the connector is a
// driver.Connector for driver.OpenDB. [DuckDB] fills a Config for the
// DuckDB C driver.
//
// # DSN
//
// The package registers the driver name "adbc" with driver.Register. Its
// DSN is a list of key=value pairs separated by semicolons:
//
//	driver=/path/libduckdb_adbc.so;entrypoint=duckdb_adbc_init;path=/tmp/x.db
//
// A backslash escapes the character after it, in keys and values alike, so
// any value can be written: `\;` is a semicolon, `\=` an equals sign, `\\`
// a backslash (and `\x` is x for any other character). The first unescaped
// `=` of a pair separates key from value; empty pairs (a trailing `;`) are
// ignored; a pair without `=`, an empty key, a repeated key and a trailing
// lone backslash are errors. Nothing is trimmed. [FormatDSN] writes a DSN
// that parses back to the same Config.
//
// The keys Volley reads itself:
//
//	driver           the C driver's shared object (Config.Library)
//	entrypoint       its init function (Config.EntryPoint); empty: the
//	                 driver manager's default (AdbcDriverInit or derived
//	                 from the file name)
//	volley.partitions  read partitioned results on up to N connections at
//	                 once (Config.Partitions); 0, the default, executes
//	                 queries as one stream
//	volley.unordered true: merge partitions first come, first served
//	                 (Config.Unordered); false keeps partition order
//
// Keys starting with "statement." set a statement option (the prefix is
// removed: statement.adbc.rpc.result_queue_size=1). Every other key is an
// ADBC database option handed to the driver as it is (uri, username,
// password, path, ...).
//
// Options whose key contains "password", "token", "secret" or "auth" (in
// any case), and the password inside a URI-valued option, never appear in
// errors, in [Config.String] or in logs; driver error messages are scrubbed
// of those values too.
//
// # Queries
//
// Each query runs on one ADBC statement. Its schema comes before any row
// is read: from ExecuteSchema where the statement supports it, else from
// the result reader as soon as ExecuteQuery returns. Batches are pulled
// from the driver's reader one at a time, only when the async runtime asks
// for one (it does so only within the consumer's demand), and re-sliced to
// the request's BatchRows and BatchBytes bounds when they are larger.
// Parameters are bound with Bind as a one-row record (never interpolated);
// see [ParamRecord] for the Go types accepted.
//
// Cancellation (the consumer's cancel, the ctx of a blocked call) cancels
// the statement: the statement's own context for Go drivers, and
// AdbcStatementCancel for C drivers loaded through the driver manager
// (called directly through the driver's function table, since the Go
// driver manager v1.12 does not expose it), so a long-running DuckDB query
// returns promptly. A panic inside any driver call becomes an error
// wrapping [ErrDriverPanic], and the connection is discarded.
//
// Driver errors (adbc.Error, as a value or a pointer) become *async.Error
// with an errno code from their status and the metadata keys
// "adbc.status", "adbc.sqlstate" and "adbc.vendor_code" (see [MapError]).
//
// # Known issues of ADBC's Go Flight SQL driver v1.12
//
//   - Its ExecuteQuery reader reads a result's endpoints on parallel
//     goroutines that share gRPC header/trailer variables: a data race with
//     two or more endpoints. Set Config.Partitions to read multi-endpoint
//     results through Volley's merge, which reads each endpoint on its own.
//   - Its ExecuteQuery reader panics ("close of nil channel"), on a
//     goroutine of its own that Volley cannot guard, on a FlightInfo with
//     two or more endpoints and no schema. The partition merge
//     (Config.Partitions) reads such results: it takes the schema from
//     partition 0's reader.
//   - It leaks its gRPC client when basic authentication fails in Open.
package adbc
