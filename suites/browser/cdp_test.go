package browser_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	. "github.com/onsi/ginkgo/v2"
)

// chromium is a headless Chromium driven over the Chrome DevTools Protocol (CDP), spoken here
// directly over its WebSocket: one browser connection, one page session (flat mode).
type chromium struct {
	*browserProcess
	conn    *websocket.Conn
	ctx     context.Context
	cancel  context.CancelFunc
	nextID  atomic.Int64
	mu      sync.Mutex
	waiting map[int64]chan cdpReply
	session string
	readErr chan struct{}
	console *lineBuffer // the page's console errors and warnings, and uncaught exceptions
	thrown  atomic.Int64
}

type cdpReply struct {
	Result json.RawMessage `json:"result"`
	Error  *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// chromiumFlags are the flags the lab's machines need (closed network, root, no GPU) plus
// loopback ICE candidates and fake media devices.
var chromiumFlags = []string{
	"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
	"--disable-background-networking", "--disable-component-update", "--disable-sync",
	"--allow-loopback-in-peer-connection",
	"--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
	"--autoplay-policy=no-user-gesture-required",
	"--remote-debugging-port=0", "--remote-debugging-address=127.0.0.1",
}

// findChromium is the Chromium binary, or "".
func findChromium() string {
	if p := os.Getenv("CHROMIUM"); p != "" {
		found, err := exec.LookPath(p)
		if err != nil {
			Fail(fmt.Sprintf("CHROMIUM=%s is not an executable: %v (unset it to search PATH)", p, err))
		}
		return found
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

var devtoolsRE = regexp.MustCompile(`DevTools listening on (ws://\S+)`)

// launchChromium starts the browser with a fresh profile and connects to its DevTools socket.
func launchChromium(bin string) (*chromium, error) {
	dir, err := os.MkdirTemp("", "siprtc-chromium-")
	if err != nil {
		return nil, err
	}
	args := append(append([]string{}, chromiumFlags...), "--user-data-dir="+dir, "about:blank")
	cmd := exec.Command(bin, args...)
	proc, wsURL, err := startBrowser(cmd, dir, devtoolsRE, "chromium")
	if err != nil {
		return nil, err
	}
	c := &chromium{browserProcess: proc, waiting: map[int64]chan cdpReply{}, readErr: make(chan struct{}), console: &lineBuffer{}}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	dctx, dcancel := context.WithTimeout(c.ctx, 10*time.Second)
	defer dcancel()
	conn, _, err := websocket.Dial(dctx, wsURL, nil)
	if err != nil {
		c.kill()
		return nil, fmt.Errorf("devtools dial: %w", err)
	}
	conn.SetReadLimit(64 << 20)
	c.conn = conn
	go c.readLoop()
	return c, nil
}

func (c *chromium) readLoop() {
	defer close(c.readErr)
	for {
		_, data, err := c.conn.Read(c.ctx)
		if err != nil {
			return
		}
		var msg struct {
			ID     int64           `json:"id"`
			Method string          `json:"method"`
			Params json.RawMessage `json:"params"`
			cdpReply
		}
		if json.Unmarshal(data, &msg) != nil {
			continue
		}
		if msg.ID == 0 {
			c.event(msg.Method, msg.Params)
			continue
		}
		c.mu.Lock()
		ch := c.waiting[msg.ID]
		delete(c.waiting, msg.ID)
		c.mu.Unlock()
		if ch != nil {
			ch <- msg.cdpReply
		}
	}
}

// event records the page's console errors and warnings and its uncaught exceptions.
func (c *chromium) event(method string, params json.RawMessage) {
	switch method {
	case "Runtime.exceptionThrown":
		var e struct {
			ExceptionDetails struct {
				Text      string `json:"text"`
				Exception *struct {
					Description string `json:"description"`
				} `json:"exception"`
			} `json:"exceptionDetails"`
		}
		_ = json.Unmarshal(params, &e)
		text := e.ExceptionDetails.Text
		if e.ExceptionDetails.Exception != nil {
			text += " " + e.ExceptionDetails.Exception.Description
		}
		c.thrown.Add(1)
		fmt.Fprintln(c.console, "exception:", text)
	case "Runtime.consoleAPICalled":
		var e struct {
			Type string `json:"type"`
			Args []struct {
				Value       any    `json:"value"`
				Description string `json:"description"`
			} `json:"args"`
		}
		_ = json.Unmarshal(params, &e)
		if e.Type != "error" && e.Type != "warning" {
			return
		}
		var parts []string
		for _, a := range e.Args {
			if a.Value != nil {
				parts = append(parts, fmt.Sprint(a.Value))
			} else {
				parts = append(parts, a.Description)
			}
		}
		fmt.Fprintln(c.console, "console."+e.Type+":", strings.Join(parts, " "))
	}
}

// send calls a CDP method (on the page session when session is true) and decodes its result.
func (c *chromium) send(ctx context.Context, onPage bool, method string, params any, result any) error {
	id := c.nextID.Add(1)
	req := map[string]any{"id": id, "method": method}
	if params != nil {
		req["params"] = params
	}
	if onPage {
		req["sessionId"] = c.session
	}
	data, err := json.Marshal(req)
	if err != nil {
		return err
	}
	ch := make(chan cdpReply, 1)
	c.mu.Lock()
	c.waiting[id] = ch
	c.mu.Unlock()
	if err := c.conn.Write(ctx, websocket.MessageText, data); err != nil {
		return err
	}
	select {
	case r := <-ch:
		if r.Error != nil {
			return fmt.Errorf("%s: %d %s", method, r.Error.Code, r.Error.Message)
		}
		if result != nil {
			return json.Unmarshal(r.Result, result)
		}
		return nil
	case <-c.readErr:
		return fmt.Errorf("%s: devtools connection closed", method)
	case <-ctx.Done():
		return fmt.Errorf("%s: %w", method, ctx.Err())
	}
}

// hookScript runs in the page before its own scripts: it keeps every RTCPeerConnection the page
// makes in window.__siprtcPCs, so a test can read getStats() without a hook in app.js.
const hookScript = `(function () {
  const Orig = window.RTCPeerConnection;
  if (!Orig) { return; }
  window.__siprtcPCs = [];
  window.RTCPeerConnection = class extends Orig {
    constructor(...args) { super(...args); window.__siprtcPCs.push(this); }
  };
})();`

// open creates a page, attaches to it, installs the hook and loads url.
func (c *chromium) open(ctx context.Context, url string) error {
	var t struct {
		TargetID string `json:"targetId"`
	}
	if err := c.send(ctx, false, "Target.createTarget", map[string]any{"url": "about:blank"}, &t); err != nil {
		return err
	}
	var a struct {
		SessionID string `json:"sessionId"`
	}
	if err := c.send(ctx, false, "Target.attachToTarget", map[string]any{"targetId": t.TargetID, "flatten": true}, &a); err != nil {
		return err
	}
	c.session = a.SessionID
	for _, m := range []string{"Page.enable", "Runtime.enable"} {
		if err := c.send(ctx, true, m, nil, nil); err != nil {
			return err
		}
	}
	if err := c.send(ctx, true, "Page.addScriptToEvaluateOnNewDocument", map[string]any{"source": hookScript}, nil); err != nil {
		return err
	}
	var nav struct {
		ErrorText string `json:"errorText"`
	}
	if err := c.send(ctx, true, "Page.navigate", map[string]any{"url": url}, &nav); err != nil {
		return err
	}
	if nav.ErrorText != "" {
		return fmt.Errorf("navigate %s: %s", url, nav.ErrorText)
	}
	return nil
}

// eval evaluates a JavaScript expression in the page (promises awaited) and decodes its value.
func (c *chromium) eval(ctx context.Context, expr string, out any) error {
	var r struct {
		Result struct {
			Type  string          `json:"type"`
			Value json.RawMessage `json:"value"`
		} `json:"result"`
		ExceptionDetails *struct {
			Text      string `json:"text"`
			Exception *struct {
				Description string `json:"description"`
			} `json:"exception"`
		} `json:"exceptionDetails"`
	}
	err := c.send(ctx, true, "Runtime.evaluate", map[string]any{
		"expression": expr, "awaitPromise": true, "returnByValue": true, "userGesture": true,
	}, &r)
	if err != nil {
		return err
	}
	if e := r.ExceptionDetails; e != nil {
		msg := e.Text
		if e.Exception != nil {
			msg += " " + e.Exception.Description
		}
		return fmt.Errorf("page threw: %s (in %q)", msg, expr)
	}
	if out != nil && len(r.Result.Value) > 0 {
		return json.Unmarshal(r.Result.Value, out)
	}
	return nil
}

func (c *chromium) logs() (string, string, int64) {
	return c.stderr.String(), c.console.String(), c.thrown.Load()
}

// close ends the browser and removes its profile.
func (c *chromium) close() error {
	if c.conn != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = c.send(ctx, false, "Browser.close", nil, nil)
		cancel()
		_ = c.conn.CloseNow()
	}
	if c.cancel != nil {
		c.cancel()
	}
	return c.kill()
}

// lineBuffer collects written text safely.
type lineBuffer struct {
	mu sync.Mutex
	sb strings.Builder
}

func (b *lineBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.sb.Write(p)
}

func (b *lineBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.sb.String()
}
