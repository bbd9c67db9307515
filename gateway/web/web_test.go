package web

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/siprtc/siprtc/gateway/signaling"
)

func serve(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(Handler()) // listens on 127.0.0.1 only
	t.Cleanup(srv.Close)
	return srv
}

func get(t *testing.T, method, u string, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

func embedded(t *testing.T, name string) []byte {
	t.Helper()
	b, err := files.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestAssetsServedWithTypesAndCaching(t *testing.T) {
	srv := serve(t)
	for _, tc := range []struct{ path, file, contentType string }{
		{"/", "index.html", "text/html; charset=utf-8"},
		{"/index.html", "index.html", "text/html; charset=utf-8"},
		{"/app.js", "app.js", "text/javascript; charset=utf-8"},
		{"/style.css", "style.css", "text/css; charset=utf-8"},
	} {
		t.Run(tc.path, func(t *testing.T) {
			resp, body := get(t, http.MethodGet, srv.URL+tc.path, nil)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d", resp.StatusCode)
			}
			if got := resp.Header.Get("Content-Type"); got != tc.contentType {
				t.Errorf("Content-Type %q, want %q", got, tc.contentType)
			}
			if got := resp.Header.Get("Cache-Control"); got != "no-cache" {
				t.Errorf("Cache-Control %q, want no-cache (revalidate: the page must follow gateway upgrades)", got)
			}
			if got := resp.Header.Get("X-Content-Type-Options"); got != "nosniff" {
				t.Errorf("X-Content-Type-Options %q", got)
			}
			csp := resp.Header.Get("Content-Security-Policy")
			for _, want := range []string{"default-src 'none'", "script-src 'self'", "connect-src 'self' ws: wss:"} {
				if !strings.Contains(csp, want) {
					t.Errorf("Content-Security-Policy %q lacks %q", csp, want)
				}
			}
			if string(body) != string(embedded(t, tc.file)) {
				t.Errorf("body is not the embedded %s", tc.file)
			}
			etag := resp.Header.Get("ETag")
			if !strings.HasPrefix(etag, `"`) || len(etag) < 10 {
				t.Fatalf("ETag %q: want a strong validator", etag)
			}

			// A browser revalidating gets 304 and no body.
			resp, body = get(t, http.MethodGet, srv.URL+tc.path, map[string]string{"If-None-Match": etag})
			if resp.StatusCode != http.StatusNotModified || len(body) != 0 {
				t.Errorf("revalidation: status %d, %d bytes; want 304, empty", resp.StatusCode, len(body))
			}
			resp, _ = get(t, http.MethodGet, srv.URL+tc.path, map[string]string{"If-None-Match": `"stale"`})
			if resp.StatusCode != http.StatusOK {
				t.Errorf("stale ETag: status %d, want 200", resp.StatusCode)
			}

			resp, body = get(t, http.MethodHead, srv.URL+tc.path, nil)
			if resp.StatusCode != http.StatusOK || len(body) != 0 || resp.Header.Get("Content-Type") != tc.contentType {
				t.Errorf("HEAD: status %d, %d bytes, type %q", resp.StatusCode, len(body), resp.Header.Get("Content-Type"))
			}
		})
	}
}

func TestETagsDifferPerAsset(t *testing.T) {
	srv := serve(t)
	seen := map[string]string{}
	for _, p := range []string{"/", "/app.js", "/style.css"} {
		resp, _ := get(t, http.MethodGet, srv.URL+p, nil)
		etag := resp.Header.Get("ETag")
		if other, dup := seen[etag]; dup {
			t.Errorf("%s and %s share ETag %s", p, other, etag)
		}
		seen[etag] = p
	}
}

func TestUnknownPathsAndMethods(t *testing.T) {
	srv := serve(t)
	for _, p := range []string{"/favicon.ico", "/web.go", "/app.js/", "/../web.go", "/ws"} {
		if resp, _ := get(t, http.MethodGet, srv.URL+p, nil); resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: status %d, want 404", p, resp.StatusCode)
		}
	}
	resp, _ := get(t, http.MethodPost, srv.URL+"/app.js", nil)
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET, HEAD" {
		t.Errorf("POST: status %d, Allow %q; want 405, GET, HEAD", resp.StatusCode, resp.Header.Get("Allow"))
	}
}

func TestUnderPrefix(t *testing.T) {
	mux := http.NewServeMux()
	mux.Handle("/phone/", http.StripPrefix("/phone", Handler()))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	index, body := get(t, http.MethodGet, srv.URL+"/phone/", nil)
	if index.StatusCode != http.StatusOK {
		t.Fatalf("index under prefix: status %d", index.StatusCode)
	}
	// The page's references are relative, so they resolve under the prefix.
	for _, ref := range pageReferences(string(body)) {
		u, err := url.Parse(srv.URL + "/phone/")
		if err != nil {
			t.Fatal(err)
		}
		r, err := u.Parse(ref)
		if err != nil {
			t.Fatal(err)
		}
		if r.Scheme == "data" {
			continue
		}
		if resp, _ := get(t, http.MethodGet, r.String(), nil); resp.StatusCode != http.StatusOK {
			t.Errorf("%s -> %s: status %d", ref, r, resp.StatusCode)
		}
	}
}

// pageReferences returns the src and href attribute values of the page.
func pageReferences(html string) []string {
	var refs []string
	for _, m := range regexp.MustCompile(`(?i)\b(?:src|href)\s*=\s*"([^"]*)"`).FindAllStringSubmatch(html, -1) {
		refs = append(refs, m[1])
	}
	return refs
}

func TestNoExternalResources(t *testing.T) {
	loopback := map[string]bool{"localhost": true, "127.0.0.1": true, "[::1]": true}
	anyURL := regexp.MustCompile(`(?i)\bhttps?://([^/\s"'<>)\\]*)`)
	for _, name := range []string{"index.html", "app.js", "style.css"} {
		text := string(embedded(t, name))
		for _, m := range anyURL.FindAllStringSubmatch(text, -1) {
			host := strings.ToLower(m[1])
			if h, _, err := splitHostPort(host); err == nil {
				host = h
			}
			if !loopback[host] {
				t.Errorf("%s refers to an external URL %q: the page must work offline", name, m[0])
			}
		}
		if regexp.MustCompile(`(?i)@import|url\(\s*['"]?(?:[a-z]+:|//)`).MatchString(text) && name == "style.css" {
			t.Errorf("style.css imports or loads something that is not relative")
		}
	}
	refs := pageReferences(string(embedded(t, "index.html")))
	if !slices.Contains(refs, "app.js") || !slices.Contains(refs, "style.css") {
		t.Errorf("index.html references %q, want app.js and style.css", refs)
	}
	for _, ref := range refs {
		if strings.HasPrefix(ref, "//") || (strings.Contains(ref, ":") && !strings.HasPrefix(ref, "data:")) {
			t.Errorf("index.html loads %q: only relative references (or data:) are allowed", ref)
		}
	}
}

func splitHostPort(hostport string) (string, string, error) {
	u, err := url.Parse("//" + hostport)
	if err != nil {
		return "", "", err
	}
	host := u.Hostname()
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	return host, u.Port(), nil
}

// TestScriptElementsExist checks that every ui.NAME the script uses is an element id of the
// page (the script collects its elements by id), and that ids are unique.
func TestScriptElementsExist(t *testing.T) {
	html := string(embedded(t, "index.html"))
	ids := map[string]int{}
	for _, m := range regexp.MustCompile(`\sid="([^"]+)"`).FindAllStringSubmatch(html, -1) {
		ids[m[1]]++
	}
	for id, n := range ids {
		if n > 1 {
			t.Errorf("id %q appears %d times in index.html", id, n)
		}
	}
	for _, m := range regexp.MustCompile(`\bui\.([A-Za-z0-9_]+)`).FindAllStringSubmatch(string(embedded(t, "app.js")), -1) {
		if ids[m[1]] == 0 {
			t.Errorf("app.js uses ui.%s but index.html has no element with id %q", m[1], m[1])
		}
	}
	// Every form control has a label.
	for _, m := range regexp.MustCompile(`<(?:input|select)\b[^>]*\sid="([^"]+)"`).FindAllStringSubmatch(html, -1) {
		if !strings.Contains(html, `for="`+m[1]+`"`) {
			t.Errorf("control %q has no <label for>", m[1])
		}
	}
}

// messageDirections classifies the protocol's message-type constants (by their Go name in
// gateway/signaling) by who sends them. A new constant fails the test until the page handles
// it and it is added here.
var messageDirections = map[string]struct{ request, event bool }{
	"TypeLogin":            {request: true},
	"TypeLogout":           {request: true},
	"TypeInvite":           {request: true},
	"TypeCancel":           {request: true},
	"TypeReceived":         {request: true},
	"TypeAccept":           {request: true},
	"TypeRefuse":           {request: true},
	"TypeSDP":              {request: true, event: true},
	"TypeCandidate":        {request: true, event: true},
	"TypeDTMF":             {request: true, event: true},
	"TypeHangup":           {request: true, event: true},
	"TypeOK":               {event: true},
	"TypeError":            {event: true},
	"TypeLocalInvitation":  {event: true},
	"TypeRemoteInvitation": {event: true},
	"TypeKicked":           {event: true},
}

// signalingConsts parses gateway/signaling's source and returns its string constants by name,
// with their declared type name ("" for untyped). The message-type constants are unexported,
// so reading the source is the only way to compare with them.
func signalingConsts(t *testing.T) map[string][2]string {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join("..", "signaling", "*.go"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("cannot find gateway/signaling's source: %v", err)
	}
	consts := map[string][2]string{}
	fset := token.NewFileSet()
	for _, p := range paths {
		if strings.HasSuffix(p, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, p, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		for _, decl := range f.Decls {
			gd, ok := decl.(*ast.GenDecl)
			if !ok || gd.Tok != token.CONST {
				continue
			}
			typeName := ""
			for _, spec := range gd.Specs {
				vs := spec.(*ast.ValueSpec)
				if vs.Type != nil {
					typeName = ""
					if id, ok := vs.Type.(*ast.Ident); ok {
						typeName = id.Name
					}
				} else if len(vs.Values) > 0 {
					typeName = "" // a new untyped value starts a new implicit type
				}
				for i, name := range vs.Names {
					if i >= len(vs.Values) {
						continue
					}
					lit, ok := vs.Values[i].(*ast.BasicLit)
					if !ok || lit.Kind != token.STRING {
						continue
					}
					v, err := strconv.Unquote(lit.Value)
					if err != nil {
						t.Fatal(err)
					}
					consts[name.Name] = [2]string{v, typeName}
				}
			}
		}
	}
	return consts
}

func TestScriptSpeaksTheProtocol(t *testing.T) {
	js := string(embedded(t, "app.js"))
	consts := signalingConsts(t)

	wantRequests, wantEvents := map[string]bool{}, map[string]bool{}
	for name, c := range consts {
		if !strings.HasPrefix(name, "Type") || c[1] != "" {
			continue
		}
		dir, ok := messageDirections[name]
		if !ok {
			t.Errorf("gateway/signaling has a new message type %s = %q: teach the page (app.js) and messageDirections", name, c[0])
			continue
		}
		if dir.request {
			wantRequests[c[0]] = true
		}
		if dir.event {
			wantEvents[c[0]] = true
		}
	}
	for name := range messageDirections {
		if _, ok := consts[name]; !ok {
			t.Errorf("gateway/signaling no longer defines %s: update messageDirections and the page", name)
		}
	}

	// The page sends every request through request("TYPE", ...) and handles every message
	// from the gateway with on("TYPE", ...).
	gotRequests := stringArgs(js, "request")
	gotEvents := stringArgs(js, "on")
	compare := func(what string, got, want map[string]bool) {
		for v := range want {
			if !got[v] {
				t.Errorf("app.js never %s %q", what, v)
			}
		}
		for v := range got {
			if !want[v] {
				t.Errorf("app.js %s %q, which is not a message type of gateway/signaling", what, v)
			}
		}
	}
	compare("sends", gotRequests, wantRequests)
	compare("handles", gotEvents, wantEvents)
}

// stringArgs returns the string literals passed as first argument to fn(...) (not x.fn(...)).
func stringArgs(js, fn string) map[string]bool {
	out := map[string]bool{}
	re := regexp.MustCompile(`(?:^|[^\w.$])` + fn + `\(\s*"([^"]*)"`)
	for _, m := range re.FindAllStringSubmatch(js, -1) {
		out[m[1]] = true
	}
	return out
}

func TestScriptKnowsStatesCodesAndEndpoint(t *testing.T) {
	js := string(embedded(t, "app.js"))
	quoted := func(v string) bool { return strings.Contains(js, strconv.Quote(v)) }
	n := 0
	for name, c := range signalingConsts(t) {
		switch c[1] {
		case "LocalState", "RemoteState", "FailureCode":
		default:
			continue
		}
		n++
		if c[0] == string(signaling.LocalIdle) {
			continue // IDLE is never sent
		}
		if !quoted(c[0]) {
			t.Errorf("app.js does not know %s %s = %q", c[1], name, c[0])
		}
	}
	if n < 19 {
		t.Errorf("found %d state and failure-code constants in gateway/signaling, want at least 19: did the source move?", n)
	}
	for _, v := range []string{signaling.Path, signaling.Subprotocol} {
		if !quoted(v) {
			t.Errorf("app.js does not use %q", v)
		}
	}
	for _, code := range []int{signaling.CloseKicked, signaling.CloseLoginTimeout, signaling.CloseLoginFailures} {
		if !regexp.MustCompile(`\b` + strconv.Itoa(code) + `:`).MatchString(js) {
			t.Errorf("app.js does not explain close code %d", code)
		}
	}
	// The page tells users where tokens come from.
	if !strings.Contains(string(embedded(t, "index.html")), "siprtc gateway token --user") {
		t.Error("index.html does not say how to get a token")
	}
}
