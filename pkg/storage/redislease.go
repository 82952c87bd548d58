package storage

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/sirupsen/logrus"
)

// leaseSuffix makes the lease key from the checkpoint key.
const leaseSuffix = ":lease"

// leaseKey holds the owner id of the process that holds the checkpoint.
func (s *RedisStore) leaseKey() string { return s.key + leaseSuffix }

// The lease scripts. Every one reads and writes the lease and the
// checkpoint in one step, so no other client's command comes in between.
// They reply {1, text} when they did their work and {0, holder} when the
// lease is not the caller's ("" as holder: nobody holds it, but the
// checkpoint changed since the caller last saw it).
//
// A lease that vanished from the server (it lapsed while its holder was
// frozen or cut off, or redis restarted without persistence) is taken
// again by its old owner only while the checkpoint is still the value that
// owner last read or wrote, or one it wrote (its "owner" field; a reply
// lost on the way), or is gone too: then nobody wrote it since, and the
// owner's view of it is still the newest.

// oursLua defines ours(cp, known, owner): whether the checkpoint value cp
// (a GET reply) is gone, is known, or was written by owner.
const oursLua = `
local function ours(cp, known, owner)
  if type(cp) ~= "string" or cp == known then return true end
  local ok, rec = pcall(cjson.decode, cp)
  return ok and type(rec) == "table" and rec.owner == owner
end
`

var (
	// acquireLease: KEYS lease, checkpoint; ARGV owner, ttl ms. Replies
	// {1, checkpoint value or ""} or {0, holder}.
	acquireLease = redis.NewScript(`
if redis.call("SET", KEYS[1], ARGV[1], "NX", "PX", ARGV[2]) then
  local cp = redis.pcall("GET", KEYS[2])
  if type(cp) ~= "string" then cp = "" end
  return {1, cp}
end
return {0, redis.call("GET", KEYS[1]) or ""}`)

	// refreshLease: KEYS lease, checkpoint; ARGV owner, ttl ms, known.
	refreshLease = redis.NewScript(oursLua + `
local holder = redis.call("GET", KEYS[1])
if holder == ARGV[1] then
  redis.call("PEXPIRE", KEYS[1], ARGV[2])
  return {1, ""}
end
if holder then return {0, holder} end
if not ours(redis.pcall("GET", KEYS[2]), ARGV[3], ARGV[1]) then return {0, ""} end
redis.call("SET", KEYS[1], ARGV[1], "PX", ARGV[2])
return {1, ""}`)

	// releaseLease: KEYS lease; ARGV owner.
	releaseLease = redis.NewScript(`
if redis.call("GET", KEYS[1]) == ARGV[1] then redis.call("DEL", KEYS[1]) end
return {1, ""}`)

	// fencedWrite: KEYS checkpoint, lease; ARGV op ("set" or "del"),
	// value, owner ("": the writer holds no lease, and nobody may), known,
	// ttl ms.
	fencedWrite = redis.NewScript(oursLua + `
local holder = redis.call("GET", KEYS[2])
if ARGV[3] == "" then
  if holder then return {0, holder} end
elseif holder ~= ARGV[3] then
  if holder then return {0, holder} end
  if not ours(redis.pcall("GET", KEYS[1]), ARGV[4], ARGV[3]) then return {0, ""} end
  redis.call("SET", KEYS[2], ARGV[3], "PX", ARGV[5])
end
if ARGV[1] == "del" then
  redis.call("DEL", KEYS[1])
else
  redis.call("SET", KEYS[1], ARGV[2])
end
return {1, ""}`)
)

// AcquireLease implements Leaser with the key next to the checkpoint's
// (key + ":lease") holding owner, with ttl as its expiry, refreshed in the
// background every ttl/3. From now until Release, this store's Save and
// Delete write only while the lease is owner's. It fails with an error
// wrapping ErrHeld and naming the holder while another owner holds it, and
// when the store already holds a lease.
func (s *RedisStore) AcquireLease(ctx context.Context, owner string, ttl time.Duration) (Lease, error) {
	if owner == "" || ttl <= 0 {
		return nil, fmt.Errorf("%s: taking the lease: an owner id and a positive ttl are required", s.where())
	}
	s.mu.Lock()
	held := s.lease
	s.mu.Unlock()
	if held != nil {
		return nil, fmt.Errorf("%s: %w: this store already holds a lease for %q", s.where(), ErrHeld, held.owner)
	}
	sent := time.Now()
	res, err := acquireLease.Run(ctx, s.client, []string{s.leaseKey(), s.key}, owner, ttl.Milliseconds()).Slice()
	if err != nil {
		return nil, s.classify("taking the lease", err)
	}
	ok, text := scriptResult(res)
	if !ok {
		return nil, fmt.Errorf("%s: %w: %q (it lapses %s after that producer stops)", s.where(), ErrHeld, text, ttl)
	}
	l := &redisLease{
		s: s, owner: owner, ttl: ttl, confirmed: sent,
		lost: make(chan struct{}), done: make(chan struct{}), stopped: make(chan struct{}),
	}
	s.mu.Lock()
	s.lease, s.known = l, text
	s.mu.Unlock()
	go l.refresh()
	s.log.WithFields(logrus.Fields{"owner": owner, "ttl": ttl.String()}).Info("checkpoint lease taken")
	return l, nil
}

// redisLease is the Lease of a RedisStore.
type redisLease struct {
	s     *RedisStore
	owner string
	ttl   time.Duration

	lost    chan struct{} // closed by markLost
	done    chan struct{} // closed by Release
	stopped chan struct{} // closed when refresh returns
	release sync.Once

	mu        sync.Mutex
	lostErr   error
	confirmed time.Time // when the last confirmation that succeeded was sent
}

var _ Lease = (*redisLease)(nil)

// Owner implements Lease.
func (l *redisLease) Owner() string { return l.owner }

// Lost implements Lease.
func (l *redisLease) Lost() <-chan struct{} { return l.lost }

// guaranteed is how long after a confirmation was sent the lease is
// certainly still held: the server's expiry counts from when it got the
// command, a little later; a fifth of the ttl covers clocks running at
// different rates.
func (l *redisLease) guaranteed() time.Duration { return l.ttl - l.ttl/5 }

// Err implements Lease.
func (l *redisLease) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lostErr != nil {
		return l.lostErr
	}
	if since := time.Since(l.confirmed); since > l.guaranteed() {
		return fmt.Errorf("%s: the lease of %q was last confirmed %s ago and may have lapsed (the store does not answer): %w",
			l.s.where(), l.owner, since.Round(time.Millisecond), ErrUnavailable)
	}
	return nil
}

// lostError returns the error of a lost lease, nil while it is not lost.
func (l *redisLease) lostError() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lostErr
}

// markLost records that holder ("" when unknown) took the lease, closes
// Lost, and returns the error Err returns from now on.
func (l *redisLease) markLost(holder string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lostErr != nil {
		return l.lostErr
	}
	l.lostErr = &LeaseLostError{Where: l.s.where(), Holder: holder, Owner: l.owner}
	close(l.lost)
	l.s.log.WithError(l.lostErr).WithField("holder", holder).Error("checkpoint lease lost")
	return l.lostErr
}

// refresh confirms the lease every ttl/3 until Release or until it is
// lost. A confirmation the server does not answer is retried at the next
// tick; Err reports the lease unconfirmed once it may have lapsed.
func (l *redisLease) refresh() {
	defer close(l.stopped)
	t := time.NewTicker(l.ttl / 3)
	defer t.Stop()
	for {
		select {
		case <-l.done:
			return
		case <-l.lost: // never taken back: the new holder keeps it
			return
		case <-t.C:
		}
		select {
		case <-l.done: // both ready: Release wins
			return
		case <-l.lost:
			return
		default:
		}
		l.s.mu.Lock()
		known := l.s.known
		l.s.mu.Unlock()
		sent := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), l.ttl/3)
		res, err := refreshLease.Run(ctx, l.s.client, []string{l.s.leaseKey(), l.s.key}, l.owner, l.ttl.Milliseconds(), known).Slice()
		cancel()
		if err != nil {
			l.s.log.WithError(l.s.classify("refreshing the lease", err)).Warn("could not refresh the redis checkpoint lease")
			continue
		}
		ok, holder := scriptResult(res)
		if !ok {
			_ = l.markLost(holder)
			return
		}
		l.mu.Lock()
		l.confirmed = sent
		l.mu.Unlock()
	}
}

// Release implements Lease.
func (l *redisLease) Release() {
	l.release.Do(func() {
		close(l.done)
		<-l.stopped
		l.s.mu.Lock()
		if l.s.lease == l {
			l.s.lease, l.s.known = nil, ""
		}
		l.s.mu.Unlock()
		if l.lostError() != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if err := releaseLease.Run(ctx, l.s.client, []string{l.s.leaseKey()}, l.owner).Err(); err != nil {
			l.s.log.WithError(l.s.classify("releasing the lease", err)).Warn("could not release the redis checkpoint lease; it lapses by itself")
		}
	})
}
