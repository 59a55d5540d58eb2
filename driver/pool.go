package driver

import (
	"context"
	"sync"
	"time"
)

// pool is a bounded connection pool. Open slots are a counting semaphore
// (sem); idle connections are a LIFO stack. Expired idle connections are
// closed lazily, when the pool is next used, so the pool owns no goroutine.
type pool struct {
	connector Connector
	cfg       Config
	sem       chan struct{}

	mu     sync.Mutex
	idle   []idleConn
	closed bool
	stats  PoolStats
}

type idleConn struct {
	conn  Conn
	since time.Time
}

// PoolStats describes a DB's connection pool.
type PoolStats struct {
	// Open is the number of open connections (idle and in use).
	Open int
	// Idle is the number of idle connections.
	Idle int
	// Waits counts acquisitions that had to wait for a free slot.
	Waits int64
	// Discarded counts connections closed because they were unhealthy.
	Discarded int64
	// Reused counts acquisitions served by an idle connection.
	Reused int64
}

func newPool(c Connector, cfg Config) *pool {
	return &pool{connector: c, cfg: cfg, sem: make(chan struct{}, cfg.MaxOpen)}
}

// acquire returns a healthy connection, waiting (ctx-aware) for a slot.
func (p *pool) acquire(ctx context.Context) (Conn, error) {
	select {
	case p.sem <- struct{}{}:
	default:
		p.mu.Lock()
		p.stats.Waits++
		p.mu.Unlock()
		select {
		case p.sem <- struct{}{}:
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		}
	}
	for {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			<-p.sem
			return nil, ErrClosed
		}
		expired := p.pruneLocked()
		if n := len(p.idle); n > 0 {
			ic := p.idle[n-1]
			p.idle = p.idle[:n-1]
			p.mu.Unlock()
			closeAll(expired)
			if p.healthy(ctx, ic) {
				p.mu.Lock()
				p.stats.Reused++
				p.mu.Unlock()
				return ic.conn, nil
			}
			p.discard(ic.conn)
			continue
		}
		p.stats.Open++
		p.mu.Unlock()
		closeAll(expired)
		c, err := p.connector.Connect(ctx)
		if err != nil {
			p.mu.Lock()
			p.stats.Open--
			p.mu.Unlock()
			<-p.sem
			return nil, err
		}
		return c, nil
	}
}

// healthy checks an idle connection before reuse.
func (p *pool) healthy(ctx context.Context, ic idleConn) bool {
	if v, ok := As[Validator](ic.conn); ok && !v.IsValid() {
		return false
	}
	if time.Since(ic.since) > p.cfg.HealthCheckAfter || p.cfg.HealthCheckAfter < 0 {
		if pg, ok := As[Pinger](ic.conn); ok && pg.Ping(ctx) != nil {
			return false
		}
	}
	if r, ok := As[SessionResetter](ic.conn); ok && r.ResetSession(ctx) != nil {
		return false
	}
	return true
}

// release returns c to the pool. clean says whether the query on it ended
// in a state that allows reuse; a connection that reports itself invalid, or
// that saw an error or a cancel and cannot say it is valid, is closed.
func (p *pool) release(c Conn, clean bool) {
	defer func() { <-p.sem }()
	if v, ok := As[Validator](c); ok {
		clean = v.IsValid()
	}
	p.mu.Lock()
	if !clean || p.closed || len(p.idle) >= p.cfg.MaxIdle {
		if !clean {
			p.stats.Discarded++
		}
		p.stats.Open--
		p.mu.Unlock()
		c.Close()
		return
	}
	p.idle = append(p.idle, idleConn{conn: c, since: time.Now()})
	expired := p.pruneLocked()
	p.mu.Unlock()
	closeAll(expired)
}

func (p *pool) discard(c Conn) {
	p.mu.Lock()
	p.stats.Open--
	p.stats.Discarded++
	p.mu.Unlock()
	c.Close()
}

// pruneLocked removes idle connections past the idle timeout and returns
// them, for the caller to close once it has dropped the lock.
func (p *pool) pruneLocked() []Conn {
	var expired []Conn
	keep := p.idle[:0]
	for _, ic := range p.idle {
		if time.Since(ic.since) > p.cfg.IdleTimeout {
			p.stats.Open--
			expired = append(expired, ic.conn)
			continue
		}
		keep = append(keep, ic)
	}
	clear(p.idle[len(keep):])
	p.idle = keep
	return expired
}

func closeAll(cs []Conn) {
	for _, c := range cs {
		c.Close()
	}
}

// close closes the idle connections and makes later acquisitions fail;
// connections in use are closed when they are released.
func (p *pool) close() {
	p.mu.Lock()
	p.closed = true
	idle := p.idle
	p.idle = nil
	p.stats.Open -= len(idle)
	p.mu.Unlock()
	for _, ic := range idle {
		ic.conn.Close()
	}
}

func (p *pool) snapshot() PoolStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.stats
	s.Idle = len(p.idle)
	return s
}
