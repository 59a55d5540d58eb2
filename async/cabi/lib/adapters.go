package main

// The adapters register the drivers volley_open names ("postgres", "adbc").
import (
	_ "github.com/volleyhq/volley/adapters/adbc"
	_ "github.com/volleyhq/volley/adapters/postgres"
)
