package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

// format is an output file format.
type format int

const (
	formatNone format = iota
	formatIPCFile
	formatIPCStream
	formatParquet
)

// outputFormat picks the format from --out's extension.
func outputFormat(path string) (format, error) {
	switch ext := strings.ToLower(filepath.Ext(path)); {
	case path == "":
		return formatNone, nil
	case path == "-":
		return formatIPCStream, nil
	case ext == ".arrow" || ext == ".feather" || ext == ".ipc":
		return formatIPCFile, nil
	case ext == ".arrows":
		return formatIPCStream, nil
	case ext == ".parquet" || ext == ".pq":
		return formatParquet, nil
	default:
		return formatNone, &cliError{code: exitUsage, err: fmt.Errorf("--out %q: unknown format %q", path, ext),
			hint: "use .arrow (IPC file), .arrows (IPC stream), .parquet, or - for an IPC stream on stdout"}
	}
}

// recordWriter is what the three writers have in common.
type recordWriter interface {
	Write(rec arrow.RecordBatch) error
	Close() error
}

// output writes one result to a file: into a temporary file in the target's
// directory, renamed onto the target by commit; abort (also after commit,
// where it does nothing) removes the temporary file. For "-" it writes an
// IPC stream to stdout directly.
type output struct {
	path   string
	format format
	f      *os.File  // the temporary file; nil for stdout
	w      io.Writer // where the writer writes
	rw     recordWriter
	done   bool
}

// createOutput makes the temporary file at once, so an unwritable
// directory fails before the query runs.
func createOutput(path string, f format, stdout io.Writer) (*output, error) {
	o := &output{path: path, format: f}
	if path == "-" {
		o.w = stdout
		return o, nil
	}
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		return nil, fmt.Errorf("--out %s is a directory", path)
	}
	tmp, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return nil, withHint(exitError, fmt.Errorf("cannot write --out %s: %w", path, unwrapPath(err)),
			"check that the directory exists and is writable")
	}
	// The writers must not close the file (Parquet's would): commit does.
	o.f, o.w = tmp, struct{ io.Writer }{tmp}
	return o, nil
}

// unwrapPath drops the temporary file's name from a *PathError, which means
// nothing to the user.
func unwrapPath(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}

// begin starts the writer once the schema is known.
func (o *output) begin(schema *arrow.Schema) error {
	mem := memory.DefaultAllocator
	switch o.format {
	case formatIPCFile:
		w, err := ipc.NewFileWriter(o.w, ipc.WithSchema(schema), ipc.WithAllocator(mem))
		if err != nil {
			return fmt.Errorf("--out %s: %w", o.path, err)
		}
		o.rw = w
	case formatIPCStream:
		o.rw = ipc.NewWriter(o.w, ipc.WithSchema(schema), ipc.WithAllocator(mem))
	case formatParquet:
		props := parquet.NewWriterProperties(parquet.WithCompression(compress.Codecs.Snappy),
			parquet.WithAllocator(mem))
		w, err := pqarrow.NewFileWriter(schema, o.w, props, pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema()))
		if err != nil {
			return fmt.Errorf("--out %s: the result cannot be written as Parquet: %w", o.path, err)
		}
		o.rw = w
	}
	return nil
}

// write appends one batch.
func (o *output) write(rec arrow.RecordBatch) error {
	if err := o.rw.Write(rec); err != nil {
		return fmt.Errorf("--out %s: %w", o.path, err)
	}
	return nil
}

// commit finishes the file and renames it onto the target.
func (o *output) commit() error {
	if o.rw != nil {
		if err := o.rw.Close(); err != nil {
			return fmt.Errorf("--out %s: %w", o.path, err)
		}
	}
	if o.f == nil {
		o.done = true
		return nil
	}
	if err := o.f.Sync(); err != nil {
		return fmt.Errorf("--out %s: %w", o.path, err)
	}
	if err := o.f.Close(); err != nil {
		return fmt.Errorf("--out %s: %w", o.path, err)
	}
	if err := os.Chmod(o.f.Name(), 0o644); err != nil {
		return fmt.Errorf("--out %s: %w", o.path, err)
	}
	if err := os.Rename(o.f.Name(), o.path); err != nil {
		return fmt.Errorf("--out %s: %w", o.path, err)
	}
	o.done = true
	return nil
}

// abort removes the temporary file unless commit succeeded.
func (o *output) abort() {
	if o.done || o.f == nil {
		return
	}
	o.done = true
	o.f.Close()
	os.Remove(o.f.Name())
}
