package faultproxy_test

import (
	"bytes"
	"errors"
	"io"
	"net"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/dbsync/dbsync/test/faultproxy"
)

// echoServer accepts connections on 127.0.0.1 and echoes every byte back;
// it is closed at cleanup.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	return ln.Addr().String()
}

func dial(t *testing.T, p *faultproxy.Proxy) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", p.Addr(), 2*time.Second)
	if err != nil {
		t.Fatalf("dial proxy %s: %v", p.Addr(), err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// roundTrip writes msg and reads len(msg) bytes back within timeout.
func roundTrip(c net.Conn, msg []byte, timeout time.Duration) ([]byte, error) {
	if err := c.SetDeadline(time.Now().Add(timeout)); err != nil {
		return nil, err
	}
	if _, err := c.Write(msg); err != nil {
		return nil, err
	}
	got := make([]byte, len(msg))
	_, err := io.ReadFull(c, got)
	return got, err
}

func mustEcho(t *testing.T, c net.Conn, msg string) {
	t.Helper()
	got, err := roundTrip(c, []byte(msg), 2*time.Second)
	if err != nil {
		t.Fatalf("echo %q: %v", msg, err)
	}
	if string(got) != msg {
		t.Fatalf("echo %q: got %q", msg, got)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func TestPassForwardsLargeStreams(t *testing.T) {
	t.Parallel()
	p := faultproxy.Start(t, echoServer(t))
	if p.Port() <= 0 || p.Addr() != net.JoinHostPort("127.0.0.1", strconv.Itoa(p.Port())) {
		t.Fatalf("Addr %q Port %d", p.Addr(), p.Port())
	}
	c := dial(t, p)
	mustEcho(t, c, "hello")
	// 4 MiB in both directions at once: nothing lost, nothing reordered.
	big := make([]byte, 4<<20)
	for i := range big {
		big[i] = byte(i * 7)
	}
	errc := make(chan error, 1)
	go func() { _, err := c.Write(big); errc <- err }()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	got := make([]byte, len(big))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("read 4 MiB back: %v", err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("write 4 MiB: %v", err)
	}
	if !bytes.Equal(got, big) {
		t.Fatal("4 MiB came back different")
	}
	if s := p.Stats(); s.Accepted != 1 || s.Active != 1 {
		t.Fatalf("Stats = %+v, want 1 accepted, 1 active", s)
	}
}

func TestBlackholeHoldsBytesUntilPass(t *testing.T) {
	t.Parallel()
	p := faultproxy.Start(t, echoServer(t))
	c := dial(t, p)
	mustEcho(t, c, "before")
	p.Blackhole()
	if p.Mode() != faultproxy.ModeBlackhole {
		t.Fatalf("Mode = %v", p.Mode())
	}
	// The connection stays open and the write succeeds, but nothing comes
	// back: a half-open peer.
	if _, err := roundTrip(c, []byte("held"), 500*time.Millisecond); !isTimeout(err) {
		t.Fatalf("read during blackhole: %v, want a timeout", err)
	}
	// A new connection is accepted but held too.
	c2 := dial(t, p)
	if _, err := roundTrip(c2, []byte("new"), 300*time.Millisecond); !isTimeout(err) {
		t.Fatalf("new connection during blackhole: %v, want a timeout", err)
	}
	p.Pass()
	// The held bytes arrive, in order, once the blackhole lifts.
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	got := make([]byte, 4)
	if _, err := io.ReadFull(c, got); err != nil || string(got) != "held" {
		t.Fatalf("after Pass read %q, %v; want the held bytes", got, err)
	}
	mustEcho(t, c, "after")
	_ = c2.SetReadDeadline(time.Now().Add(2 * time.Second))
	got = make([]byte, 3)
	if _, err := io.ReadFull(c2, got); err != nil || string(got) != "new" {
		t.Fatalf("second connection after Pass read %q, %v", got, err)
	}
}

func TestResetSendsRSTAndAcceptsNewConnections(t *testing.T) {
	t.Parallel()
	p := faultproxy.Start(t, echoServer(t))
	c1, c2 := dial(t, p), dial(t, p)
	mustEcho(t, c1, "one")
	mustEcho(t, c2, "two")
	if n := p.Reset(); n != 2 {
		t.Fatalf("Reset reset %d connections, want 2", n)
	}
	for i, c := range []net.Conn{c1, c2} {
		_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
		_, err := c.Read(make([]byte, 1))
		if !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("connection %d after Reset: read error %v, want connection reset by peer", i+1, err)
		}
	}
	mustEcho(t, dial(t, p), "three")
	if s := p.Stats(); s.Reset != 2 || s.Accepted != 3 {
		t.Fatalf("Stats = %+v, want 3 accepted, 2 reset", s)
	}
}

func TestLatencyDelaysEachDirection(t *testing.T) {
	t.Parallel()
	p := faultproxy.Start(t, echoServer(t))
	c := dial(t, p)
	mustEcho(t, c, "warm")
	const d = 100 * time.Millisecond
	p.Latency(d)
	began := time.Now()
	mustEcho(t, c, "slow")
	// One chunk each way: at least 2×d.
	if rtt := time.Since(began); rtt < 2*d || rtt > 2*d+time.Second {
		t.Fatalf("round trip with %s latency took %s, want about %s", d, rtt, 2*d)
	}
	// Latency adds delay without limiting throughput: ten chunks in flight
	// take about the same time as one.
	began = time.Now()
	for i := 0; i < 10; i++ {
		if _, err := c.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	if _, err := io.ReadFull(c, make([]byte, 10)); err != nil {
		t.Fatal(err)
	}
	if el := time.Since(began); el > 2*d+time.Second {
		t.Fatalf("ten pipelined chunks took %s with %s latency", el, d)
	}
	p.Latency(0)
	began = time.Now()
	mustEcho(t, c, "fast")
	if rtt := time.Since(began); rtt > d {
		t.Fatalf("round trip after Latency(0) took %s", rtt)
	}
}

func TestRefuseClosesNewConnectionsOnly(t *testing.T) {
	t.Parallel()
	p := faultproxy.Start(t, echoServer(t))
	old := dial(t, p)
	mustEcho(t, old, "old")
	p.Refuse()
	// The kernel accepts and the proxy closes the connection at once; the
	// reset can already reach the dial.
	c, err := net.DialTimeout("tcp", p.Addr(), 2*time.Second)
	if err == nil {
		defer c.Close()
		_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
		_, err = c.Read(make([]byte, 1))
		if err == nil || isTimeout(err) {
			t.Fatalf("read on a refused connection: %v, want it closed", err)
		}
	} else if !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial while refusing: %v, want a closed connection or a reset", err)
	}
	mustEcho(t, old, "still")
	p.Pass()
	mustEcho(t, dial(t, p), "again")
}

func TestTargetDownClosesClient(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	target := ln.Addr().String()
	_ = ln.Close()
	p := faultproxy.Start(t, target)
	c, err := net.DialTimeout("tcp", p.Addr(), 2*time.Second)
	if err != nil {
		return // reset while connecting: closed, as wanted
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil || isTimeout(err) {
		t.Fatalf("read through a proxy whose target is down: %v, want the connection closed", err)
	}
}

func TestPeerCloseIsForwarded(t *testing.T) {
	t.Parallel()
	p := faultproxy.Start(t, echoServer(t))
	c := dial(t, p)
	mustEcho(t, c, "bye")
	_ = c.(*net.TCPConn).CloseWrite()
	// The echo server sees EOF, closes, and the proxy closes our side.
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("read after half-close: %v, want EOF", err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for p.Stats().Active != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("Stats = %+v after both sides closed, want 0 active", p.Stats())
		}
		time.Sleep(10 * time.Millisecond)
	}
}
