package tune

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// Progress shows a sweep's progress on a writer (stderr): on a terminal one line redrawn in
// place (a bar, done/total, elapsed, ETA) every Update and every second; otherwise a plain
// line at most every Every and at the end.
type Progress struct {
	w     io.Writer
	total int
	tty   bool
	// Every is the period of the plain lines (default 5 s); Now the clock (tests).
	Every time.Duration
	Now   func() time.Time

	mu       sync.Mutex
	start    time.Time
	done     int
	last     time.Time // of the last plain line
	finished bool
	stop     chan struct{}
}

// NewProgress starts showing the progress of total runs on w; tty selects the redrawn line.
func NewProgress(w io.Writer, total int, tty bool) *Progress {
	p := &Progress{w: w, total: total, tty: tty, Every: 5 * time.Second, Now: time.Now, stop: make(chan struct{})}
	p.start = p.Now()
	if tty {
		p.draw()
		go p.tick()
	}
	return p
}

func (p *Progress) tick() {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
			p.mu.Lock()
			if !p.finished {
				p.draw()
			}
			p.mu.Unlock()
		}
	}
}

// Update records that done runs are over.
func (p *Progress) Update(done int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.finished {
		return
	}
	p.done = done
	if p.tty {
		p.draw()
		return
	}
	if now := p.Now(); done == p.total || now.Sub(p.last) >= p.Every {
		p.last = now
		fmt.Fprintln(p.w, "tune: "+p.line())
	}
}

// Finish ends the display (the terminal line is finished with a newline; a plain display
// prints its last line unless it already did).
func (p *Progress) Finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.finished {
		return
	}
	p.finished = true
	if p.tty {
		close(p.stop)
		p.draw()
		fmt.Fprintln(p.w)
		return
	}
	if p.done != p.total || p.last.IsZero() {
		fmt.Fprintln(p.w, "tune: "+p.line())
	}
}

func (p *Progress) draw() {
	const width = 24
	n := 0
	if p.total > 0 {
		n = width * p.done / p.total
	}
	fmt.Fprintf(p.w, "\r[%s%s] %s\x1b[K", strings.Repeat("#", n), strings.Repeat(".", width-n), p.line())
}

// Line is the progress as text: "tune: 4/9 runs, elapsed 5.2s, ETA 6.5s".
func (p *Progress) Line() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return "tune: " + p.line()
}

func (p *Progress) line() string {
	elapsed := p.Now().Sub(p.start)
	eta := "?"
	if p.done > 0 {
		eta = round(time.Duration(float64(elapsed) / float64(p.done) * float64(p.total-p.done))).String()
	}
	return fmt.Sprintf("%d/%d runs, elapsed %s, ETA %s", p.done, p.total, round(elapsed), eta)
}

func round(d time.Duration) time.Duration {
	if d >= 10*time.Second {
		return d.Round(time.Second)
	}
	return d.Round(100 * time.Millisecond)
}
