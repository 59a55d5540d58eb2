package adbc

// DuckDBEntryPoint is the ADBC entry point of DuckDB's C driver.
const DuckDBEntryPoint = "duckdb_adbc_init"

// DuckDB returns a Config for DuckDB's C driver: library is the path of
// the driver's shared object (`make duckdb` builds it into
// .cache/duckdb/libduckdb_adbc.so; the duckdbtest harness returns it for
// tests), path the database file, or "" for a private in-memory database
// (":memory:"). The result can be adjusted before [Config.Connector].
func DuckDB(library, path string) Config {
	if path == "" {
		path = ":memory:"
	}
	return Config{Library: library, EntryPoint: DuckDBEntryPoint,
		Options: map[string]string{"path": path}}
}
