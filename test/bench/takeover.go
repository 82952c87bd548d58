package bench

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"time"

	"github.com/dbsync/dbsync/test/testenv"
)

// takeoverTable receives the write load while the takeovers are measured.
const takeoverTable = "ha"

// takeoverResult is the measurement of a standby's takeovers.
type takeoverResult struct {
	LeaseTTL time.Duration
	// Times run from the SIGKILL of the active producer until the standby
	// logged that its binlog stream started, sorted.
	Times []time.Duration
}

func (r *takeoverResult) median() time.Duration { return r.Times[len(r.Times)/2] }
func (r *takeoverResult) max() time.Duration    { return r.Times[len(r.Times)-1] }

// measureTakeovers runs two producers on one source with the NATS
// checkpoint store and HA.Standby against a NATS server of its own, under
// single-row commits at about 200/s, and kills the active one n times:
// each time it notes how long the standby took to stream, then starts the
// killed one again as the standby.
func measureTakeovers(ctx context.Context, parent *benchTB, bin string, db *testenv.MariaDB, n int, ttl time.Duration) (*takeoverResult, error) {
	tb := parent.scope("takeovers")
	defer tb.close()
	fail := func(err error) (*takeoverResult, error) { return nil, fmt.Errorf("takeovers: %w", err) }
	br, err := startBroker(tb, BrokerJetStream)
	if err != nil {
		return fail(err)
	}
	createTables(tb, db, takeoverTable)
	var setups [2]*producerSetup
	for i := range setups {
		if setups[i], err = newProducerSetup(tb, bin, db, br, []string{benchDB + "." + takeoverTable}, false); err != nil {
			return fail(err)
		}
		for section, v := range map[string]any{
			"Storage": map[string]any{"DaoName": "nats", "PosKey": "key"},
			"HA":      map[string]any{"Standby": true, "LeaseTTL": ttl.String()},
		} {
			if err := setups[i].addConfig(section, v); err != nil {
				return fail(err)
			}
		}
	}
	const standbyLog = "standby: another replica holds the checkpoint lease"
	var procs [2]*producerProc
	if procs[0], err = setups[0].start(tb); err != nil {
		return fail(err)
	}
	if err := procs[0].waitLog(streamStartedLog, time.Minute); err != nil {
		return fail(err)
	}
	if procs[1], err = setups[1].start(tb); err != nil {
		return fail(err)
	}
	if err := procs[1].waitLog(standbyLog, time.Minute); err != nil {
		return fail(err)
	}
	conn, err := sql.Open("mysql", db.DSN(""))
	if err != nil {
		return fail(err)
	}
	defer conn.Close()
	loadCtx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	go func() {
		for id := 1; loadCtx.Err() == nil; id++ {
			_, _ = conn.ExecContext(loadCtx, fmt.Sprintf("INSERT INTO %s.%s VALUES (%d, 'x', 1, 1.00, NOW(6))", benchDB, takeoverTable, id))
			time.Sleep(5 * time.Millisecond)
		}
	}()
	res := &takeoverResult{LeaseTTL: ttl}
	active := 0
	for k := 0; k < n; k++ {
		time.Sleep(time.Second)
		killed := time.Now()
		procs[active].child.Kill()
		standby := 1 - active
		if err := procs[standby].waitLog(streamStartedLog, 2*ttl+time.Minute); err != nil {
			return fail(err)
		}
		res.Times = append(res.Times, time.Since(killed))
		if procs[active], err = setups[active].start(tb); err != nil {
			return fail(err)
		}
		if err := procs[active].waitLog(standbyLog, time.Minute); err != nil {
			return fail(err)
		}
		active = standby
	}
	slices.Sort(res.Times)
	return res, nil
}
