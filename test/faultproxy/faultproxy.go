// Package faultproxy is a small TCP proxy for fault-injection tests: it
// listens on a free 127.0.0.1 port, forwards every connection to a target
// address, and can be switched at run time between passing bytes through,
// blackholing them (a half-open peer), resetting every connection, adding
// latency, and refusing new connections.
//
// A test puts a Proxy between the component under test and a server (the
// producer's MySQL port, or its broker URL) and flips modes while the
// component runs:
//
//	p := faultproxy.Start(t, db.Addr())
//	cfg.Port = p.Port()
//	...
//	p.Blackhole()            // connections stay open, nothing arrives
//	time.Sleep(8 * time.Second)
//	p.Pass()                 // held bytes flow again
//	p.Reset()                // every current connection gets an RST
//
// Bytes are never dropped or reordered inside a connection: a blackhole holds
// them (as TCP would retransmit them after a partition heals) until Pass, a
// Reset, or the peer closing. The proxy is closed at test cleanup.
package faultproxy

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"
)

// Mode is what the proxy does with traffic.
type Mode int

// Modes. Latency is not a mode of its own: it applies on top of Pass.
const (
	// ModePass forwards bytes in both directions.
	ModePass Mode = iota
	// ModeBlackhole accepts connections and keeps them open, but forwards no
	// byte in either direction until the mode changes.
	ModeBlackhole
	// ModeRefuse closes every new connection at once (with an RST);
	// connections already open keep passing bytes.
	ModeRefuse
)

// String names the mode.
func (m Mode) String() string {
	switch m {
	case ModePass:
		return "pass"
	case ModeBlackhole:
		return "blackhole"
	case ModeRefuse:
		return "refuse"
	}
	return "mode(" + strconv.Itoa(int(m)) + ")"
}

// dialTimeout bounds connecting to the target.
const dialTimeout = 5 * time.Second

// chunkQueue is how many read chunks may wait per direction (for latency or
// a blackhole) before the reader stops reading.
const chunkQueue = 256

// Proxy forwards TCP connections from Addr to a target. Its methods are safe
// for concurrent use.
type Proxy struct {
	target string
	ln     net.Listener
	t      testing.TB

	mu       sync.Mutex
	mode     Mode
	latency  time.Duration
	changed  chan struct{} // closed and replaced at every mode change
	conns    map[*pair]struct{}
	closed   bool
	accepted int
	resets   int

	wg sync.WaitGroup
}

// Stats counts what the proxy saw.
type Stats struct {
	// Accepted is the number of connections accepted so far (refused ones
	// included).
	Accepted int
	// Active is the number of connections currently forwarded (or held).
	Active int
	// Reset is the number of connections closed by Reset.
	Reset int
}

// pair is one proxied connection: the accepted client side and the dialled
// target side.
type pair struct {
	client, server *net.TCPConn
	once           sync.Once
	done           chan struct{} // closed when the pair is torn down
}

// Start listens on a free port of 127.0.0.1 and forwards connections to
// target ("host:port") in Pass mode. The proxy and every connection through
// it are closed at test cleanup. It fails the test when it cannot listen.
// The target need not be up yet: a connection that cannot reach it is
// closed.
func Start(t testing.TB, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("faultproxy: listen on 127.0.0.1 for target %s: %v", target, err)
	}
	p := &Proxy{target: target, ln: ln, t: t, changed: make(chan struct{}), conns: map[*pair]struct{}{}}
	p.wg.Add(1)
	go p.acceptLoop()
	t.Cleanup(p.Close)
	return p
}

// Addr is the proxy's listening address, "127.0.0.1:PORT".
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Port is the proxy's listening port.
func (p *Proxy) Port() int { return p.ln.Addr().(*net.TCPAddr).Port }

// Target is the address connections are forwarded to.
func (p *Proxy) Target() string { return p.target }

// Mode returns the current mode.
func (p *Proxy) Mode() Mode {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mode
}

// Stats returns the connection counters.
func (p *Proxy) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return Stats{Accepted: p.accepted, Active: len(p.conns), Reset: p.resets}
}

// setMode switches the mode and wakes every waiting forwarder.
func (p *Proxy) setMode(m Mode) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mode = m
	close(p.changed)
	p.changed = make(chan struct{})
}

// Pass forwards bytes again; bytes held by a blackhole are delivered first.
// Latency set by Latency stays in effect.
func (p *Proxy) Pass() { p.setMode(ModePass) }

// Blackhole stops forwarding in both directions while keeping every
// connection open: peers see a half-open connection (their writes succeed,
// nothing arrives). New connections are accepted and held the same way.
func (p *Proxy) Blackhole() { p.setMode(ModeBlackhole) }

// Refuse makes the proxy close new connections at once with an RST, as a
// port nobody listens on would; open connections are not affected.
func (p *Proxy) Refuse() { p.setMode(ModeRefuse) }

// Latency delays every chunk of bytes read from either side by d before it
// is written to the other side (0 removes the delay). It keeps the mode.
func (p *Proxy) Latency(d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.latency = d
	close(p.changed)
	p.changed = make(chan struct{})
}

// Reset closes every current connection abruptly on both sides (SO_LINGER 0,
// so both peers get an RST and any held bytes are dropped). New connections
// are accepted as the mode says. It returns how many connections it reset.
func (p *Proxy) Reset() int {
	p.mu.Lock()
	pairs := make([]*pair, 0, len(p.conns))
	for c := range p.conns {
		pairs = append(pairs, c)
	}
	p.resets += len(pairs)
	p.mu.Unlock()
	for _, c := range pairs {
		c.abort()
	}
	return len(pairs)
}

// Close stops listening and resets every connection; it waits until every
// forwarding goroutine has ended. Closing twice does nothing.
func (p *Proxy) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	p.mu.Unlock()
	_ = p.ln.Close()
	p.Reset()
	p.wg.Wait()
}

// state returns what a forwarder needs to decide, and the channel closed at
// the next change.
func (p *Proxy) state() (Mode, time.Duration, <-chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mode, p.latency, p.changed
}

func (p *Proxy) acceptLoop() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Temporary accept errors (EMFILE…): back off briefly.
			time.Sleep(10 * time.Millisecond)
			continue
		}
		client := c.(*net.TCPConn)
		p.mu.Lock()
		p.accepted++
		mode, closed := p.mode, p.closed
		p.mu.Unlock()
		if closed || mode == ModeRefuse {
			_ = client.SetLinger(0)
			_ = client.Close()
			continue
		}
		p.wg.Add(1)
		go p.serve(client)
	}
}

// serve dials the target for client and forwards both directions until
// either side closes or the pair is reset.
func (p *Proxy) serve(client *net.TCPConn) {
	defer p.wg.Done()
	sc, err := net.DialTimeout("tcp", p.target, dialTimeout)
	if err != nil {
		// The target is down: the client sees its connection reset, as it
		// would connecting to the target directly.
		_ = client.SetLinger(0)
		_ = client.Close()
		return
	}
	c := &pair{client: client, server: sc.(*net.TCPConn), done: make(chan struct{})}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		c.abort()
		return
	}
	p.conns[c] = struct{}{}
	p.mu.Unlock()

	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); p.forward(c, c.client, c.server) }()
	go func() { defer wg.Done(); p.forward(c, c.server, c.client) }()
	wg.Wait()

	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
}

// chunk is a piece of bytes read from one side, or the read error that
// ended that side (err != nil, data empty).
type chunk struct {
	data []byte
	at   time.Time
	err  error
}

// forward copies src to dst through a queue so that a blackhole or latency
// holds bytes without reordering them. When src ends, dst is closed after
// the queued bytes were written; a write error tears the pair down.
func (p *Proxy) forward(c *pair, src, dst *net.TCPConn) {
	queue := make(chan chunk, chunkQueue)
	go func() {
		for {
			buf := make([]byte, 32*1024)
			n, err := src.Read(buf)
			if n > 0 {
				select {
				case queue <- chunk{data: buf[:n], at: time.Now()}:
				case <-c.done:
					return
				}
			}
			if err != nil {
				select {
				case queue <- chunk{err: err, at: time.Now()}:
				case <-c.done:
				}
				return
			}
		}
	}()
	for {
		var ch chunk
		select {
		case ch = <-queue:
		case <-c.done:
			return
		}
		if !p.wait(c, ch.at) {
			return
		}
		if ch.err != nil {
			// The source side ended: close the pair gracefully (the other
			// side's pending bytes are not needed by a peer that left).
			c.close()
			return
		}
		if _, err := dst.Write(ch.data); err != nil {
			c.abort()
			return
		}
	}
}

// wait blocks while the proxy is blackholed and until the chunk read at at
// has aged by the configured latency. It returns false when the pair was
// torn down meanwhile.
func (p *Proxy) wait(c *pair, at time.Time) bool {
	for {
		mode, latency, changed := p.state()
		if mode == ModeBlackhole {
			select {
			case <-changed:
				continue
			case <-c.done:
				return false
			}
		}
		d := time.Until(at.Add(latency))
		if d <= 0 {
			return true
		}
		timer := time.NewTimer(d)
		select {
		case <-timer.C:
		case <-changed:
			timer.Stop()
		case <-c.done:
			timer.Stop()
			return false
		}
	}
}

// close shuts both sides with a normal FIN.
func (c *pair) close() {
	c.once.Do(func() {
		close(c.done)
		_ = c.client.Close()
		_ = c.server.Close()
	})
}

// abort shuts both sides with an RST (SO_LINGER 0).
func (c *pair) abort() {
	c.once.Do(func() {
		close(c.done)
		_ = c.client.SetLinger(0)
		_ = c.server.SetLinger(0)
		_ = c.client.Close()
		_ = c.server.Close()
	})
}

// String describes the proxy for logs.
func (p *Proxy) String() string {
	mode, latency, _ := p.state()
	return fmt.Sprintf("faultproxy %s -> %s (%s, latency %s)", p.Addr(), p.target, mode, latency)
}
