package browser_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	. "github.com/onsi/ginkgo/v2"
)

// firefox is a headless Firefox driven over WebDriver BiDi (Firefox 129+ has no CDP), spoken
// here directly over its WebSocket: one session, one browsing context.
type firefox struct {
	*browserProcess
	conn    *websocket.Conn
	ctx     context.Context
	cancel  context.CancelFunc
	nextID  atomic.Int64
	mu      sync.Mutex
	waiting map[int64]chan bidiReply
	context string
	readErr chan struct{}
	console *lineBuffer
	thrown  atomic.Int64
}

type bidiReply struct {
	Type    string          `json:"type"`
	Result  json.RawMessage `json:"result"`
	Error   string          `json:"error"`
	Message string          `json:"message"`
}

// firefoxPrefs make a fresh profile quiet on a closed network, with fake media devices, no
// permission prompt and loopback ICE candidates.
var firefoxPrefs = map[string]any{
	"media.navigator.streams.fake":                      true,
	"media.navigator.permission.disabled":               true,
	"media.autoplay.default":                            0,
	"media.autoplay.blocking_policy":                    0,
	"media.peerconnection.ice.loopback":                 true,
	"media.peerconnection.ice.default_address_only":     false,
	"media.peerconnection.ice.no_host":                  false,
	"media.peerconnection.ice.obfuscate_host_addresses": false,
	"media.peerconnection.ice.link_local":               true,
	"remote.active-protocols":                           1,
	"app.update.enabled":                                false,
	"app.update.auto":                                   false,
	"browser.shell.checkDefaultBrowser":                 false,
	"browser.startup.homepage_override.mstone":          "ignore",
	"browser.aboutwelcome.enabled":                      false,
	"toolkit.telemetry.enabled":                         false,
	"toolkit.telemetry.unified":                         false,
	"network.connectivity-service.enabled":              false,
	"network.captive-portal-service.enabled":            false,
	"network.dns.disablePrefetch":                       true,
	"network.prefetch-next":                             false,
	"browser.safebrowsing.malware.enabled":              false,
	"browser.safebrowsing.phishing.enabled":             false,
	"browser.safebrowsing.downloads.enabled":            false,
	"browser.safebrowsing.blockedURIs.enabled":          false,
	"browser.safebrowsing.provider.mozilla.updateURL":   "",
	"datareporting.healthreport.uploadEnabled":          false,
	"datareporting.policy.dataSubmissionEnabled":        false,
	"extensions.update.enabled":                         false,
	"extensions.blocklist.enabled":                      false,
	"services.settings.server":                          "http://127.0.0.1:9/",
	"browser.newtabpage.enabled":                        false,
	"browser.search.update":                             false,
}

// findFirefox is the Firefox binary, or "".
func findFirefox() string {
	if p := os.Getenv("FIREFOX"); p != "" {
		found, err := exec.LookPath(p)
		if err != nil {
			Fail(fmt.Sprintf("FIREFOX=%s is not an executable: %v (unset it to search PATH)", p, err))
		}
		return found
	}
	for _, name := range []string{"firefox-esr", "firefox"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

var bidiRE = regexp.MustCompile(`WebDriver BiDi listening on (ws://\S+)`)

// launchFirefox starts the browser with a fresh profile, opens a BiDi session and subscribes to
// the page's log.
func launchFirefox(bin string) (browser, error) {
	dir, err := os.MkdirTemp("", "siprtc-firefox-")
	if err != nil {
		return nil, err
	}
	var userJS strings.Builder
	for k, v := range firefoxPrefs {
		b, _ := json.Marshal(v)
		fmt.Fprintf(&userJS, "user_pref(%q, %s);\n", k, b)
	}
	if err := os.WriteFile(filepath.Join(dir, "user.js"), []byte(userJS.String()), 0o644); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	cmd := exec.Command(bin, "--headless", "--no-remote", "--remote-debugging-port=0", "--profile", dir, "about:blank")
	cmd.Env = append(os.Environ(), "MOZ_CRASHREPORTER_DISABLE=1", "MOZ_DISABLE_AUTO_SAFE_MODE=1")
	proc, wsURL, err := startBrowser(cmd, dir, bidiRE, "firefox")
	if err != nil {
		return nil, err
	}
	f := &firefox{browserProcess: proc, waiting: map[int64]chan bidiReply{}, readErr: make(chan struct{}), console: &lineBuffer{}}
	f.ctx, f.cancel = context.WithCancel(context.Background())
	dctx, dcancel := context.WithTimeout(f.ctx, 10*time.Second)
	defer dcancel()
	conn, _, err := websocket.Dial(dctx, strings.TrimSuffix(wsURL, "/")+"/session", nil)
	if err != nil {
		f.kill()
		return nil, fmt.Errorf("bidi dial: %w", err)
	}
	conn.SetReadLimit(64 << 20)
	f.conn = conn
	go f.readLoop()
	if err := f.send(dctx, "session.new", map[string]any{"capabilities": map[string]any{}}, nil); err != nil {
		_ = f.close()
		return nil, err
	}
	if err := f.send(dctx, "session.subscribe", map[string]any{"events": []string{"log.entryAdded"}}, nil); err != nil {
		_ = f.close()
		return nil, err
	}
	return f, nil
}

func (f *firefox) readLoop() {
	defer close(f.readErr)
	for {
		_, data, err := f.conn.Read(f.ctx)
		if err != nil {
			return
		}
		var msg struct {
			ID     *int64          `json:"id"`
			Method string          `json:"method"`
			Params json.RawMessage `json:"params"`
			bidiReply
		}
		if json.Unmarshal(data, &msg) != nil {
			continue
		}
		if msg.Type == "event" {
			f.event(msg.Method, msg.Params)
			continue
		}
		if msg.ID == nil {
			continue
		}
		f.mu.Lock()
		ch := f.waiting[*msg.ID]
		delete(f.waiting, *msg.ID)
		f.mu.Unlock()
		if ch != nil {
			ch <- msg.bidiReply
		}
	}
}

// event records the page's console errors and warnings and its uncaught exceptions.
func (f *firefox) event(method string, params json.RawMessage) {
	if method != "log.entryAdded" {
		return
	}
	var e struct {
		Type       string          `json:"type"`
		Level      string          `json:"level"`
		Text       string          `json:"text"`
		StackTrace json.RawMessage `json:"stackTrace"`
	}
	_ = json.Unmarshal(params, &e)
	if e.Type == "javascript" && e.Level == "error" {
		// Firefox 140 now and then reports `Permission denied to access property "length"`, with
		// no stack, about 100 ms into loading the page, while a preload script is installed (never
		// seen without one, whatever the script does): that is the BiDi preload machinery, not
		// the page. It is shown in the report, not counted as the page's exception.
		if len(e.StackTrace) == 0 && strings.HasPrefix(e.Text, "Error: Permission denied to access property") {
			fmt.Fprintln(f.console, "browser-internal error (not counted):", e.Text)
			return
		}
		f.thrown.Add(1)
		fmt.Fprintln(f.console, "exception:", e.Text)
		return
	}
	if e.Level == "error" || e.Level == "warn" {
		fmt.Fprintln(f.console, "console."+e.Level+":", e.Text)
	}
}

// send calls a BiDi command and decodes its result.
func (f *firefox) send(ctx context.Context, method string, params any, result any) error {
	id := f.nextID.Add(1)
	if params == nil {
		params = map[string]any{}
	}
	data, err := json.Marshal(map[string]any{"id": id, "method": method, "params": params})
	if err != nil {
		return err
	}
	ch := make(chan bidiReply, 1)
	f.mu.Lock()
	f.waiting[id] = ch
	f.mu.Unlock()
	if err := f.conn.Write(ctx, websocket.MessageText, data); err != nil {
		return err
	}
	select {
	case r := <-ch:
		if r.Type == "error" {
			return fmt.Errorf("%s: %s %s", method, r.Error, r.Message)
		}
		if result != nil {
			return json.Unmarshal(r.Result, result)
		}
		return nil
	case <-f.readErr:
		return fmt.Errorf("%s: bidi connection closed", method)
	case <-ctx.Done():
		return fmt.Errorf("%s: %w", method, ctx.Err())
	}
}

func (f *firefox) open(ctx context.Context, url string) error {
	var tree struct {
		Contexts []struct {
			Context string `json:"context"`
		} `json:"contexts"`
	}
	if err := f.send(ctx, "browsingContext.getTree", map[string]any{"maxDepth": 0}, &tree); err != nil {
		return err
	}
	if len(tree.Contexts) > 0 {
		f.context = tree.Contexts[0].Context
	} else {
		var c struct {
			Context string `json:"context"`
		}
		if err := f.send(ctx, "browsingContext.create", map[string]any{"type": "tab"}, &c); err != nil {
			return err
		}
		f.context = c.Context
	}
	if err := f.send(ctx, "script.addPreloadScript", map[string]any{
		"functionDeclaration": "() => {\n" + hookScript + "\n}", "contexts": []string{f.context},
	}, nil); err != nil {
		return err
	}
	return f.send(ctx, "browsingContext.navigate", map[string]any{"context": f.context, "url": url, "wait": "complete"}, nil)
}

// remoteValue is a BiDi serialized value.
type remoteValue struct {
	Type  string          `json:"type"`
	Value json.RawMessage `json:"value"`
}

// plain turns a serialized value into plain Go values (primitives, arrays and objects).
func (v remoteValue) plain() (any, error) {
	switch v.Type {
	case "undefined", "null":
		return nil, nil
	case "string", "boolean":
		var x any
		err := json.Unmarshal(v.Value, &x)
		return x, err
	case "number":
		var x any
		if err := json.Unmarshal(v.Value, &x); err != nil {
			return nil, err
		}
		if s, ok := x.(string); ok { // NaN, -0, Infinity
			return s, nil
		}
		return x, nil
	case "array", "set":
		var items []remoteValue
		if err := json.Unmarshal(v.Value, &items); err != nil {
			return nil, err
		}
		out := make([]any, 0, len(items))
		for _, it := range items {
			p, err := it.plain()
			if err != nil {
				return nil, err
			}
			out = append(out, p)
		}
		return out, nil
	case "object", "map":
		var pairs [][2]json.RawMessage
		if err := json.Unmarshal(v.Value, &pairs); err != nil {
			return nil, err
		}
		out := map[string]any{}
		for _, kv := range pairs {
			var key string
			if json.Unmarshal(kv[0], &key) != nil {
				var rk remoteValue
				_ = json.Unmarshal(kv[0], &rk)
				k, _ := rk.plain()
				key = fmt.Sprint(k)
			}
			var val remoteValue
			if err := json.Unmarshal(kv[1], &val); err != nil {
				return nil, err
			}
			p, err := val.plain()
			if err != nil {
				return nil, err
			}
			out[key] = p
		}
		return out, nil
	}
	return nil, fmt.Errorf("cannot decode a %s", v.Type)
}

func (f *firefox) eval(ctx context.Context, expr string, out any) error {
	var r struct {
		Type             string      `json:"type"`
		Result           remoteValue `json:"result"`
		ExceptionDetails *struct {
			Text string `json:"text"`
		} `json:"exceptionDetails"`
	}
	if err := f.send(ctx, "script.evaluate", map[string]any{
		"expression": expr, "target": map[string]any{"context": f.context},
		"awaitPromise": true, "resultOwnership": "none", "userActivation": true,
	}, &r); err != nil {
		return err
	}
	if r.Type == "exception" {
		msg := ""
		if r.ExceptionDetails != nil {
			msg = r.ExceptionDetails.Text
		}
		return fmt.Errorf("page threw: %s (in %q)", msg, expr)
	}
	if out == nil {
		return nil
	}
	v, err := r.Result.plain()
	if err != nil {
		return err
	}
	if v == nil {
		return nil
	}
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return json.Unmarshal(data, out)
}

func (f *firefox) logs() (string, string, int64) {
	return f.stderr.String(), f.console.String(), f.thrown.Load()
}

func (f *firefox) close() error {
	if f.conn != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = f.send(ctx, "browser.close", nil, nil)
		cancel()
		_ = f.conn.CloseNow()
	}
	if f.cancel != nil {
		f.cancel()
	}
	return f.kill()
}
