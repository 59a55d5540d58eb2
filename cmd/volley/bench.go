package main

import (
	"context"
)

// runBenchChild runs a benchmark child process when the bench harness
// re-executed this binary as one; it reports whether it did.
func runBenchChild() bool { return false }

func runBench(ctx context.Context, e *env, args []string) error {
	return usagef("bench is not available yet")
}
