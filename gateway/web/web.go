// Package web serves the gateway's browser phone: a small self-contained page (the role of
// anyRTC's ARCall web demo) that logs in to the signalling WebSocket, places and answers calls
// and runs the WebRTC side of each call, using only the protocol of docs/signaling.md.
//
// The page is three embedded files (index.html, app.js, style.css) with no external resource,
// so it works offline on a LAN. It connects by default to the signalling endpoint on its own
// origin (ws(s)://HOST/ws), so mount it next to the signalling server:
//
//	mux.Handle(signaling.Path, srv)
//	mux.Handle("/", web.Handler())
//
// Asset URLs are relative: the page can also live under a prefix that ends in a slash
// (mux.Handle("/phone/", http.StripPrefix("/phone", web.Handler()))).
package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"net/http"
	"time"
)

//go:embed index.html app.js style.css
var files embed.FS

// Response headers of every asset.
const (
	// cacheControl makes browsers revalidate on every load (a 304 thanks to the ETag): the
	// assets are a few kilobytes and change with every gateway release, and a stale app.js
	// speaking an older protocol would be worse than one round trip.
	cacheControl = "no-cache"
	// contentSecurityPolicy allows nothing but the page's own files and WebSocket connections
	// (to its own gateway by default, or to the URL the user types): no external resource can
	// load even if one slipped into the page.
	contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
		"media-src 'self' blob: mediastream:; connect-src 'self' ws: wss:; base-uri 'none'; form-action 'none'; " +
		"frame-ancestors 'none'"
)

// asset is one embedded file, ready to serve.
type asset struct {
	name        string
	body        []byte
	contentType string
	etag        string
}

// routes maps request paths to the embedded files.
var routes = map[string]string{
	"/":           "index.html",
	"":            "index.html",
	"/index.html": "index.html",
	"/app.js":     "app.js",
	"/style.css":  "style.css",
}

var contentTypes = map[string]string{
	"index.html": "text/html; charset=utf-8",
	"app.js":     "text/javascript; charset=utf-8",
	"style.css":  "text/css; charset=utf-8",
}

// handler serves the page's assets.
type handler struct {
	assets map[string]*asset // by request path
}

// Handler returns the http.Handler that serves the page: "/" (and "/index.html"), "/app.js"
// and "/style.css", for GET and HEAD, with an ETag, revalidating caching and a strict
// Content-Security-Policy. Any other path is 404.
func Handler() http.Handler {
	h := &handler{assets: map[string]*asset{}}
	byName := map[string]*asset{}
	for name, contentType := range contentTypes {
		body, err := files.ReadFile(name)
		if err != nil {
			panic("web: embedded asset missing: " + name) // the go:embed line guarantees it
		}
		sum := sha256.Sum256(body)
		byName[name] = &asset{
			name: name, body: body, contentType: contentType,
			etag: `"` + base64.RawURLEncoding.EncodeToString(sum[:12]) + `"`,
		}
	}
	for path, name := range routes {
		h.assets[path] = byName[name]
	}
	return h
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a, ok := h.assets[r.URL.Path]
	if !ok {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	hdr := w.Header()
	hdr.Set("Content-Type", a.contentType)
	hdr.Set("Cache-Control", cacheControl)
	hdr.Set("ETag", a.etag)
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Content-Security-Policy", contentSecurityPolicy)
	hdr.Set("Referrer-Policy", "no-referrer")
	// ServeContent answers If-None-Match with 304 (using the ETag above), HEAD and ranges.
	http.ServeContent(w, r, a.name, time.Time{}, bytes.NewReader(a.body))
}
