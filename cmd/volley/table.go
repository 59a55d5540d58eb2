package main

import (
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
)

// maxCell is the widest a preview cell gets before it is truncated.
const maxCell = 40

// preview keeps the first rows of a result, rendered as text at once (a
// batch's buffers may be pinned memory freed with the batch), for printing
// as a table.
type preview struct {
	limit int
	rows  int
	cells [][]string
	total int64
}

func newPreview(limit int) *preview { return &preview{limit: limit} }

// add renders what it still needs of rec.
func (p *preview) add(rec arrow.RecordBatch) {
	p.total += rec.NumRows()
	need := int64(p.limit - p.rows)
	if need <= 0 || rec.NumRows() == 0 {
		return
	}
	n := int(min(need, rec.NumRows()))
	for r := 0; r < n; r++ {
		row := make([]string, rec.NumCols())
		for c := range row {
			row[c] = truncate(cellText(rec.Column(c), r))
		}
		p.cells = append(p.cells, row)
	}
	p.rows += n
}

// print writes the table: a header of column names, a rule, the rows with
// aligned columns (numbers right-aligned), NULL for nulls, and a footer when
// rows were left out.
func (p *preview) print(w io.Writer, schema *arrow.Schema) {
	if schema == nil {
		return
	}
	fields := schema.Fields()
	if len(fields) == 0 {
		fmt.Fprintf(w, "(no columns, %d rows)\n", p.total)
		return
	}
	cells := make([][]string, 0, p.rows+1)
	head := make([]string, len(fields))
	for i, f := range fields {
		head[i] = truncate(f.Name)
	}
	cells = append(cells, head)
	cells = append(cells, p.cells...)
	width := make([]int, len(fields))
	for _, row := range cells {
		for c, s := range row {
			width[c] = max(width[c], utf8.RuneCountInString(s))
		}
	}
	right := make([]bool, len(fields))
	for c, f := range fields {
		right[c] = numeric(f.Type)
	}
	var b strings.Builder
	line := func(row []string) {
		for c, s := range row {
			if c > 0 {
				b.WriteString("  ")
			}
			pad := strings.Repeat(" ", width[c]-utf8.RuneCountInString(s))
			switch {
			case right[c]:
				b.WriteString(pad + s)
			case c == len(row)-1:
				b.WriteString(s)
			default:
				b.WriteString(s + pad)
			}
		}
		b.WriteString("\n")
	}
	line(cells[0])
	rule := make([]string, len(fields))
	for c := range fields {
		rule[c] = strings.Repeat("-", width[c])
	}
	line(rule)
	for _, row := range cells[1:] {
		line(row)
	}
	switch {
	case p.total > int64(p.rows):
		fmt.Fprintf(&b, "(%d of %d rows shown; --limit N shows more)\n", p.rows, p.total)
	case p.total == 0:
		b.WriteString("(0 rows)\n")
	}
	io.WriteString(w, b.String())
}

// cellText renders one value; nulls as NULL. The text is a copy: arrow-go's
// string values point into the batch's buffers, which die with the batch.
func cellText(a arrow.Array, i int) string {
	if a.IsNull(i) {
		return "NULL"
	}
	switch a := a.(type) {
	case *array.String:
		return strings.Clone(a.Value(i))
	case *array.LargeString:
		return strings.Clone(a.Value(i))
	case *array.StringView:
		return strings.Clone(a.Value(i))
	case *array.Decimal128:
		// All the scale's digits ("1.50"), as databases print decimals.
		return a.Value(i).ToString(a.DataType().(arrow.DecimalType).GetScale())
	case *array.Decimal256:
		return a.Value(i).ToString(a.DataType().(arrow.DecimalType).GetScale())
	case *array.Decimal64:
		return a.Value(i).ToString(a.DataType().(arrow.DecimalType).GetScale())
	case *array.Decimal32:
		return a.Value(i).ToString(a.DataType().(arrow.DecimalType).GetScale())
	}
	return strings.Clone(a.ValueStr(i))
}

// truncate shortens s to maxCell runes, ending in "…", and makes control
// characters visible so they cannot break the table.
func truncate(s string) string {
	s = strings.Map(func(r rune) rune {
		switch r {
		case '\n', '\r', '\t':
			return ' '
		}
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, s)
	if utf8.RuneCountInString(s) <= maxCell {
		return s
	}
	r := []rune(s)
	return string(r[:maxCell-1]) + "…"
}

func numeric(t arrow.DataType) bool {
	switch t.ID() {
	case arrow.INT8, arrow.INT16, arrow.INT32, arrow.INT64, arrow.UINT8, arrow.UINT16, arrow.UINT32,
		arrow.UINT64, arrow.FLOAT16, arrow.FLOAT32, arrow.FLOAT64, arrow.DECIMAL128, arrow.DECIMAL256,
		arrow.DECIMAL32, arrow.DECIMAL64:
		return true
	}
	return false
}
