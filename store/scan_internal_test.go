package store

import (
	"fmt"
	"testing"
)

func TestUnpackEvents(t *testing.T) {
	tests := []struct {
		packed string
		attrs  []string
		want   string
		err    bool
	}{
		{"[(1700000000000,7,18446744073709551615,5)]", nil, "[{1700000000000 7 18446744073709551615 5 []}]", false},
		{"[(1,0,3,2),(4,9,6,5)]", []string{"a\x1fb"}, "[{1 0 3 2 [a]} {4 9 6 5 [b]}]", false},
		{"[(1,0,3,2),(4,0,6,5)]", []string{`x\\y\f` + "\x1f"}, "[{1 0 3 2 [x\\y\x1f]} {4 0 6 5 []}]", false},
		{"[]", nil, "[]", false},
		{"[(1,0,3,2),(4,0,6,5)]", []string{"only one"}, "", true},
		{"[(1,0,3)]", nil, "", true},
		{"[(1,0,3,2,7)]", nil, "", true},
		{"[(1,0,x,2)]", nil, "", true},
		{"[(1,0,3,2);(4,0,6,5)]", nil, "", true},
		{"[(1,0,3,2),]", nil, "", true},
		{"[(1,0,3,2)(4,0,6,5)]", nil, "", true},
		{"[(1,0,3,2)", nil, "", true},
		{"(1,0,3,2)", nil, "", true},
		{"[(1,0,,2)]", nil, "", true},
		{"[(123456789012345678901,0,3,2)]", nil, "", true},
		{"", nil, "", true},
	}
	for _, tt := range tests {
		got, err := unpackEvents(nil, tt.packed, tt.attrs)
		if (err != nil) != tt.err {
			t.Errorf("%q: error %v, want error %v", tt.packed, err, tt.err)
			continue
		}
		if err == nil && fmt.Sprint(got) != tt.want {
			t.Errorf("%q %q: %v, want %s", tt.packed, tt.attrs, got, tt.want)
		}
	}
}
