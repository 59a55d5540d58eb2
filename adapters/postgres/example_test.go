package postgres_test

import (
	"fmt"

	"github.com/volleyhq/volley/adapters/postgres"
)

// Type-mapping policies can be set in the DSN; the volley_* parameters are
// removed before pgconn parses it. OpenConnector parses once and connects
// nothing.
func ExampleDriver_OpenConnector() {
	ctr, err := postgres.Driver{}.OpenConnector(
		"postgres://app@db.example/tpch?sslmode=disable&volley_numeric=decimal&volley_numeric_scale=4&volley_infinity=clamp")
	fmt.Println(ctr != nil, err)

	_, err = postgres.Driver{}.OpenConnector("postgres://app@db.example/tpch?volley_numeric=binary")
	fmt.Println(err)
	// Output:
	// true <nil>
	// async: invalid argument: postgres: volley_numeric="binary" (want string, float64 or decimal)
}

// Config's zero value is the documented default; Validate reports bad
// settings.
func ExampleConfig_Validate() {
	fmt.Println(postgres.Config{}.Validate())
	fmt.Println(postgres.Config{Numeric: postgres.NumericDecimal, NumericScale: 40}.Validate())
	// Output:
	// <nil>
	// async: invalid argument: postgres: numeric scale 40 out of 0..38
}
