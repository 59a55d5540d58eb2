package postgres

import (
	"math/big"
	"math/rand/v2"
	"testing"

	"github.com/jackc/pgx/v5/pgtype"
)

// numericFast agrees with the general path (parseNumeric, unscaled) on
// every value it accepts, and accepts the common ones: random values of
// numeric(p, s) for p ≤ 18, written by pgx's encoder in PostgreSQL's
// binary form (including trailing-zero groups stripped and negative
// exponents).
func TestNumericFastAgrees(t *testing.T) {
	m := pgtype.NewMap()
	r := rand.New(rand.NewPCG(5, 6))
	accepted := 0
	for i := 0; i < 200000; i++ {
		prec := 1 + r.IntN(18)
		scale := r.IntN(prec + 1)
		digits := r.Int64N(pow10i(min(prec+r.IntN(2), 18))) // sometimes one digit too many
		if r.IntN(3) == 0 {
			digits -= digits % pow10i(r.IntN(prec)+1) // trailing zeros
		}
		if r.IntN(2) == 0 {
			digits = -digits
		}
		exp := -scale + r.IntN(3) - 1 // at, below and above the scale
		v, err := m.Encode(pgtype.NumericOID, pgtype.BinaryFormatCode, pgtype.Numeric{Int: big.NewInt(digits), Exp: int32(exp), Valid: true}, nil)
		if err != nil {
			t.Fatal(err)
		}
		fast, ok := numericFast(v, prec, scale)
		n, err := parseNumeric(v)
		if err != nil {
			t.Fatalf("%d e%d: %v", digits, exp, err)
		}
		x, _, uerr := n.unscaled(int32(prec), int32(scale))
		if !ok {
			continue
		}
		accepted++
		if uerr != nil {
			t.Fatalf("%d e%d numeric(%d,%d): fast path gave %d, general path refuses: %v", digits, exp, prec, scale, fast, uerr)
		}
		if want := x.BigInt().Int64(); want != fast {
			t.Fatalf("%d e%d numeric(%d,%d): fast %d, general %d", digits, exp, prec, scale, fast, want)
		}
	}
	if accepted < 40000 {
		t.Fatalf("the fast path took only %d of 200000 values", accepted)
	}
	for _, tc := range []struct {
		digits int64
		exp    int32
		want   int64
	}{{1234567, -2, 1234567}, {17, 0, 1700}, {-5, -2, -5}, {90000, -2, 90000}, {0, 0, 0}} {
		v, _ := m.Encode(pgtype.NumericOID, pgtype.BinaryFormatCode, pgtype.Numeric{Int: big.NewInt(tc.digits), Exp: tc.exp, Valid: true}, nil)
		if got, ok := numericFast(v, 15, 2); !ok || got != tc.want {
			t.Errorf("%de%d as numeric(15,2): %d, %v; want %d", tc.digits, tc.exp, got, ok, tc.want)
		}
	}
}

func pow10i(n int) int64 {
	p := int64(1)
	for ; n > 0; n-- {
		p *= 10
	}
	return p
}
