package pgtest

import (
	"io"
	"net"
	"net/url"
	"sync"
	"testing"
)

// Proxy stands between the code under test and a PostgreSQL server, so
// that a test can cut the database off (a real network fault: its
// connections reset, new ones closed at once) and bring it back, or stall
// it (a network that silently drops everything: nothing is closed and
// nothing arrives), without touching the server other tests use. Its
// listener stays open through an outage, so that nothing else can take
// its port before the database comes back.
type Proxy struct {
	// Addr is where the proxy listens, 127.0.0.1 on a free port.
	Addr   string
	target string
	ln     net.Listener
	mu     sync.Mutex
	down   bool
	conns  []net.Conn
	// flowing is closed while the proxy forwards, open while it stalls;
	// answering likewise for the server's replies alone
	flowing, answering chan struct{}
}

// NewProxy forwards a free local port to target (host:port) until t ends.
func NewProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{Addr: ln.Addr().String(), target: target, ln: ln, flowing: make(chan struct{}), answering: make(chan struct{})}
	close(p.flowing)
	close(p.answering)
	go p.serve()
	t.Cleanup(func() { p.Cut(); _ = ln.Close() })
	return p
}

// NewProxyFor is NewProxy to the server of dsn (a URL DSN), and dsn
// through it, with a connect timeout of 1 s so that a cut database is
// noticed quickly.
func NewProxyFor(t testing.TB, dsn string) (*Proxy, string) {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil || u.Host == "" {
		t.Fatalf("a proxy needs a URL DSN with a host: %v", err)
	}
	p := NewProxy(t, u.Host)
	u.Host = p.Addr
	q := u.Query()
	q.Set("connect_timeout", "1")
	u.RawQuery = q.Encode()
	return p, u.String()
}

func (p *Proxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		down := p.down
		p.mu.Unlock()
		if down {
			c.Close()
			continue
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, up)
		p.mu.Unlock()
		go func() { p.forward(up, c, false); up.Close() }()
		go func() { p.forward(c, up, true); c.Close() }()
	}
}

// forward copies src to dst, holding what it reads while the proxy
// stalls, or, for the server's replies, while it holds them.
func (p *Proxy) forward(dst io.Writer, src io.Reader, replies bool) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			flowing, answering := p.flowing, p.answering
			p.mu.Unlock()
			<-flowing
			if replies {
				<-answering
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// Stall stops forwarding in both directions and closes nothing: the
// connections, old and new, look alive to both ends and carry nothing,
// until Resume (which delivers what was held) or Cut.
func (p *Proxy) Stall() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.flowing:
		p.flowing = make(chan struct{})
	default:
	}
}

// HoldReplies stops forwarding what the server sends, and only that:
// queries reach the server and run, their answers wait until Resume (a
// reply stuck on a congested network).
func (p *Proxy) HoldReplies() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.answering:
		p.answering = make(chan struct{})
	default:
	}
}

// Resume forwards again after Stall or HoldReplies, what was held first.
func (p *Proxy) Resume() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.release()
}

// release ends any stall and any hold; p.mu is held.
func (p *Proxy) release() {
	for _, gate := range []chan struct{}{p.flowing, p.answering} {
		select {
		case <-gate:
		default:
			close(gate)
		}
	}
}

// Cut closes every connection and every new one: the database is gone.
// It ends a stall too, so that nothing waits on closed connections.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
	p.release()
}

// Restore lets connections through again: the database is back.
func (p *Proxy) Restore() {
	p.mu.Lock()
	p.down = false
	p.mu.Unlock()
}
