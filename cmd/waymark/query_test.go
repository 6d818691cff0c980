package main

import (
	"bytes"
	"encoding/csv"
	"slices"
	"testing"
)

// TestDropoffCSVIsNotAFormula writes person ids that a visitor could have sent as their userId
// through the drop-off's CSV and reads them back as a spreadsheet would: a cell that begins with
// a formula's first character must begin with an apostrophe (OWASP, "CSV Injection"), every other
// id must come back as it is.
func TestDropoffCSVIsNotAFormula(t *testing.T) {
	tests := []struct{ id, cell string }{
		{"=cmd|' /C calc'!A0", "'=cmd|' /C calc'!A0"},
		{`=HYPERLINK("http://evil.example","x")`, `'=HYPERLINK("http://evil.example","x")`},
		{"+15551234567", "'+15551234567"},
		{"-2+3", "'-2+3"},
		{"@SUM(A1)", "'@SUM(A1)"},
		{"\tx", "'\tx"},
		{"\rx", "'\rx"},
		{"alice@example.com", "alice@example.com"},
		{"user-7", "user-7"},
		{"a=b", "a=b"},
		{"'quoted", "'quoted"},
	}
	var ids, want []string
	for _, tt := range tests {
		ids, want = append(ids, tt.id), append(want, tt.cell)
	}
	var out bytes.Buffer
	if err := writeDropoffCSV(&out, ids); err != nil {
		t.Fatal(err)
	}
	records, err := csv.NewReader(&out).ReadAll()
	if err != nil {
		t.Fatalf("read the CSV back: %v\n%s", err, out.String())
	}
	var got []string
	for _, r := range records {
		if len(r) != 1 {
			t.Fatalf("a row of %d cells: %q", len(r), r)
		}
		got = append(got, r[0])
	}
	if got[0] != "person_id" || !slices.Equal(got[1:], want) {
		t.Errorf("cells %q, want person_id then %q", got, want)
	}
}
