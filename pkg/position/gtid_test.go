package position

import (
	"strings"
	"testing"
)

func TestGTIDStateMariaDB(t *testing.T) {
	st, err := ParseGTIDState("1-2-7, 0-1-42")
	if err != nil {
		t.Fatal(err)
	}
	if got := st.String(); got != "0-1-42,1-2-7" {
		t.Fatalf("String %q, want domain order", got)
	}
	for g, want := range map[string]bool{"0-1-42": true, "0-9-41": true, "0-1-43": false, "1-2-7": true, "2-1-1": false, "": false, "x": false} {
		if st.Covers(g) != want {
			t.Errorf("Covers(%q) = %v, want %v", g, !want, want)
		}
	}
	st.Add("0-3-40") // lower: no change
	st.Add("2-1-5")
	if got := st.String(); got != "0-1-42,1-2-7,2-1-5" {
		t.Fatalf("after Add: %q", got)
	}
	server := MustGTIDState("0-1-40,1-2-9")
	if m := server.Missing(st); m == "" {
		t.Fatal("a server behind in domain 0 and without domain 2 is missing nothing")
	}
	if m := MustGTIDState("0-1-50,1-2-9,2-1-5").Missing(st); m != "" {
		t.Fatalf("a server ahead misses %q", m)
	}
	for _, bad := range []string{"0-1", "a-b-c", "0-1-2-3"} {
		if _, err := ParseGTIDState(bad); err == nil {
			t.Errorf("ParseGTIDState(%q) accepted", bad)
		}
	}
}

func TestGTIDStateMySQL(t *testing.T) {
	const a, b = "3e11fa47-71ca-11e1-9e33-c80aa9429562", "4e11fa47-71ca-11e1-9e33-c80aa9429562"
	st, err := ParseGTIDState(b + ":1-3,\n" + a + ":1-5:7")
	if err != nil {
		t.Fatal(err)
	}
	if got := st.String(); got != a+":1-5:7,"+b+":1-3" {
		t.Fatalf("String %q", got)
	}
	for g, want := range map[string]bool{a + ":5": true, a + ":6": false, a + ":7": true, b + ":4": false, "x:1": false} {
		if st.Covers(g) != want {
			t.Errorf("Covers(%q) = %v, want %v", g, !want, want)
		}
	}
	st.Add(a + ":6")
	if got := st.String(); got != a+":1-7,"+b+":1-3" {
		t.Fatalf("after Add, intervals not merged: %q", got)
	}
	if m := MustGTIDState(a + ":1-7").Missing(st); m == "" {
		t.Fatal("a server without b's transactions misses nothing")
	}
	if _, err := ParseGTIDState(a + ":5-3"); err == nil {
		t.Fatal("a reversed interval was accepted")
	}
}

// TestGTIDStateMissingIsFast compares sets of a billion transactions by
// their intervals, not one by one.
func TestGTIDStateMissingIsFast(t *testing.T) {
	const a = "3e11fa47-71ca-11e1-9e33-c80aa9429562"
	have := MustGTIDState(a + ":1-1000000000")
	if m := have.Missing(MustGTIDState(a + ":5-999999999")); m != "" {
		t.Fatalf("missing %q", m)
	}
	if m := MustGTIDState(a + ":1-10:12-1000000000").Missing(have); m == "" || !strings.Contains(m, a+":11 ") {
		t.Fatalf("missing %q, want 11 named", m)
	}
	if m := MustGTIDState(a + ":1-10").Missing(have); !strings.Contains(m, a+":11 ") {
		t.Fatalf("missing %q, want 11 named", m)
	}
}
