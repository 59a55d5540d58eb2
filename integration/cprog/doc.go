// Package cprog holds C programs (testdata/*.c) that consume and produce
// through Volley's C ABI, and the tests that build libvolley (the c-shared
// library of async/cabi/lib) and the programs with gcc, run them and check
// from C the rules only visible there (shared/SPEC.md).
package cprog
