package main

import (
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// TestPreviewTable renders a preview in process: right-aligned numbers,
// decimals with their scale, NULL, control characters and wide cells made
// safe, a footer for rows left out; the batches can be released at once
// (the preview keeps copies).
func TestPreviewTable(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "id", Type: arrow.PrimitiveTypes.Int64},
		{Name: "price", Type: &arrow.Decimal128Type{Precision: 15, Scale: 2}, Nullable: true},
		{Name: "note", Type: arrow.BinaryTypes.String, Nullable: true},
	}, nil)
	b := array.NewRecordBuilder(mem, schema)
	defer b.Release()
	p := newPreview(3)
	for batch := 0; batch < 2; batch++ {
		for i := 0; i < 2; i++ {
			n := int64(batch*2 + i)
			b.Field(0).(*array.Int64Builder).Append(n * 1000)
			if n == 1 {
				b.Field(1).AppendNull()
				b.Field(2).AppendNull()
				continue
			}
			b.Field(1).(*array.Decimal128Builder).Append(decimal128.FromI64(n*100 + 5))
			b.Field(2).(*array.StringBuilder).Append("tab\there\nnewline " + strings.Repeat("é", 50))
		}
		rec := b.NewRecordBatch()
		p.add(rec)
		rec.Release() // the preview must not need the batch afterwards
	}
	var out strings.Builder
	p.print(&out, schema)
	want := strings.Join([]string{
		"  id  price  note",
		"----  -----  ----------------------------------------",
		"   0   0.05  tab here newline " + strings.Repeat("é", 22) + "…",
		"1000   NULL  NULL",
		"2000   2.05  tab here newline " + strings.Repeat("é", 22) + "…",
		"(3 of 4 rows shown; --limit N shows more)",
		"",
	}, "\n")
	if out.String() != want {
		t.Errorf("preview:\n%s\nwant:\n%s", out.String(), want)
	}

	var empty strings.Builder
	newPreview(5).print(&empty, schema)
	if !strings.HasSuffix(empty.String(), "(0 rows)\n") {
		t.Errorf("empty preview:\n%s", empty.String())
	}
}
