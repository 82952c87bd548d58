package client

import "testing"

func co(file string, pos uint32) Coordinate {
	return Coordinate{Source: "src", History: "h1", File: file, Pos: pos}
}

// step is one change arriving at a subscription: its coordinate, the id
// its envelope names as prev, and what the subscription must do.
type step struct {
	c    Coordinate
	prev string
	want judgement
}

func run(t *testing.T, name string, steps []step) Progress {
	t.Helper()
	var p Progress
	for i, s := range steps {
		got, next, why := p.judge(s.c, s.prev)
		if got != s.want {
			t.Fatalf("%s: step %d (%s, prev %q): judged %d, want %d (why %q; progress %+v)", name, i, s.c.ID(), s.prev, got, s.want, why, p)
		}
		p = next // a duplicate's progress is p, or p with a replay counted
	}
	return p
}

func TestProgressJudge(t *testing.T) {
	a, b, c, d, e := co("bin.000001", 100), co("bin.000001", 200), co("bin.000001", 300), co("bin.000001", 400), co("bin.000002", 4)
	t.Run("in order, then an in-order replay", func(t *testing.T) {
		run(t, "replay", []step{
			{a, "", handOver}, {b, a.ID(), handOver}, {c, b.ID(), handOver},
			// A producer restart replays from its checkpoint.
			{b, "", duplicate}, {c, b.ID(), duplicate}, {d, c.ID(), handOver},
		})
	})
	t.Run("NATS Streaming stored c without b: b comes late and is handed over", func(t *testing.T) {
		p := run(t, "late", []step{
			{a, "", handOver}, {c, b.ID(), handOver}, {d, c.ID(), handOver},
			{a, "", duplicate}, {b, a.ID(), late}, {c, b.ID(), duplicate}, {d, c.ID(), duplicate}, {e, d.ID(), handOver},
		})
		if p.Last != e {
			t.Fatalf("last %s, want %s", p.Last.ID(), e.ID())
		}
	})
	t.Run("a crafted far-future coordinate does not hide the real changes", func(t *testing.T) {
		far := co("bin.999999", 4)
		run(t, "far", []step{
			{a, "", handOver}, {far, "x", handOver},
			{b, a.ID(), late}, {c, b.ID(), late}, {d, c.ID(), late},
			{c, b.ID(), duplicate},
		})
	})
	t.Run("histories", func(t *testing.T) {
		reset := Coordinate{Source: "src", History: "h2", File: "bin.000001", Pos: 4}
		renamed := Coordinate{Source: "src", History: "h1", File: "mysql-bin.000001", Pos: 4}
		other := Coordinate{Source: "other", History: "h1", File: "bin.000001", Pos: 500}
		for _, x := range []Coordinate{reset, renamed, other} {
			run(t, x.String(), []step{{c, "", handOver}, {x, "", otherHistory}})
		}
		if same, why := c.SameHistory(reset); same || why == "" {
			t.Fatalf("another history id counted as the same history")
		}
	})
	t.Run("a coordinate saved before histories existed adopts the first one", func(t *testing.T) {
		legacy := Progress{Last: Coordinate{File: "bin.000001", Pos: 200}}
		if got, _, _ := legacy.judge(a, ""); got != duplicate {
			t.Fatalf("replay against a legacy coordinate: %d", got)
		}
		got, next, _ := legacy.judge(c, "")
		if got != handOver || next.Last != c {
			t.Fatalf("new change against a legacy coordinate: %d, %+v", got, next)
		}
	})
	t.Run("gaps are bounded, merging never drops", func(t *testing.T) {
		var steps []step
		for i := uint32(0); i < 3*maxGaps; i++ {
			steps = append(steps, step{co("bin.000001", 1000+10*i), "", handOver})
		}
		p := run(t, "many passes", steps)
		if len(p.Gaps) > maxGaps {
			t.Fatalf("%d gaps, want at most %d", len(p.Gaps), maxGaps)
		}
		// A change between the first two hand-overs is still handed over.
		if got, _, _ := p.judge(co("bin.000001", 1005), ""); got != late {
			t.Fatalf("change inside a merged gap judged %d, want late", got)
		}
	})
}

func TestCoordinateCompareAcrossFiles(t *testing.T) {
	for _, tc := range []struct {
		a, b Coordinate
		want int
	}{
		{co("bin.000009", 900), co("bin.000010", 4), -1},
		{co("bin.999999", 4), co("bin.1000000", 4), -1},
		{Coordinate{File: "bin.000001", Pos: 4, Row: 2}, Coordinate{File: "bin.000001", Pos: 4, Row: 1}, 1},
	} {
		if got := tc.a.Compare(tc.b); got != tc.want {
			t.Errorf("%s vs %s: %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}

// TestProgressAcrossFailover: after a source failover the producer takes a
// new history that continues the old one; changes of the new history are
// judged by GTID against the last ones handed over, so the replay of what
// was published from the old primary (new coordinates, same GTIDs) is
// dropped and the rest handed over, without a history change report.
func TestProgressAcrossFailover(t *testing.T) {
	old := func(pos uint32, gtid string) Coordinate {
		return Coordinate{Source: "src", History: "h1", File: "bin.000007", Pos: pos, GTID: gtid}
	}
	moved := func(pos uint32, gtid string) Coordinate {
		return Coordinate{Source: "src", History: "h2", Continues: "h1", File: "replica-bin.000002", Pos: pos, GTID: gtid}
	}
	t.Run("MariaDB", func(t *testing.T) {
		p := run(t, "mariadb", []step{
			{old(100, "0-1-41"), "", handOver}, {old(200, "0-1-42"), "", handOver},
			// The replica's binlog holds 0-1-41 and 0-1-42 at other places.
			{moved(50, "0-1-41"), "", duplicate}, {moved(80, "0-1-42"), "", duplicate},
			{moved(120, "0-1-43"), "", handOver}, {moved(160, "0-2-44"), "", handOver},
			{moved(160, "0-2-44"), "", duplicate},
		})
		if p.Last.History != "h2" || p.GTIDs != "0-2-44" {
			t.Fatalf("progress after the failover %+v, want history h2 and GTID mark 0-2-44", p)
		}
	})
	t.Run("MySQL, two origins", func(t *testing.T) {
		const a, b = "3e11fa47-71ca-11e1-9e33-c80aa9429562", "4e11fa47-71ca-11e1-9e33-c80aa9429562"
		run(t, "mysql", []step{
			{old(100, a+":7"), "", handOver}, {old(200, b+":3"), "", handOver},
			{moved(10, a+":7"), "", duplicate}, {moved(20, b+":3"), "", duplicate},
			{moved(30, b+":4"), "", handOver}, {moved(40, a+":8"), "", handOver},
		})
	})
	t.Run("a transaction cut by the failover", func(t *testing.T) {
		// 0-1-42 had three rows on this subject; two were handed over
		// before the primary died. The new server sends all three again.
		p := run(t, "cut", []step{
			{old(100, "0-1-41"), "", handOver}, {old(200, "0-1-42"), "", handOver}, {old(210, "0-1-42"), "", handOver},
			{moved(50, "0-1-41"), "", duplicate},
			{moved(80, "0-1-42"), "", duplicate}, {moved(90, "0-1-42"), "", duplicate}, {moved(95, "0-1-42"), "", handOver},
			{moved(120, "0-2-43"), "", handOver},
		})
		if p.Last.Pos != 120 || p.Tx != "0-2-43" || p.TxRows != 1 {
			t.Fatalf("progress %+v", p)
		}
	})
	t.Run("a snapshot row is never judged by its GTID", func(t *testing.T) {
		snap := moved(60, "0-1-41")
		snap.Snapshot = true
		run(t, "snapshot", []step{{old(100, "0-1-41"), "", handOver}, {snap, "", handOver}})
	})
	t.Run("a history that does not say it continues is another history", func(t *testing.T) {
		reset := Coordinate{Source: "src", History: "h3", File: "bin.000001", Pos: 4, GTID: "0-1-1"}
		run(t, "reset", []step{{old(100, "0-1-41"), "", handOver}, {reset, "", otherHistory}})
	})
	t.Run("continuing another history than the last one handed over", func(t *testing.T) {
		other := Coordinate{Source: "src", History: "h9", Continues: "h8", File: "bin.000001", Pos: 4, GTID: "0-1-1"}
		run(t, "other", []step{{old(100, "0-1-41"), "", handOver}, {other, "", otherHistory}})
	})
}
