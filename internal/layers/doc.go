// Package layers holds the test that keeps the import layering of
// shared/ARCHITECTURE.md honest. It has no code of its own.
package layers
