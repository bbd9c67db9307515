// Test harness: runs the page's app.js in node, with a fake DOM (built from index.html's ids)
// and fake WebRTC, against a real gateway/signaling server the Go test started. It plays the
// user (typing, clicking) through a scenario and checks what the page shows and does.
//
// Usage: node harness.js APP_JS INDEX_HTML SCENARIO
// Environment: HARNESS_HOST (host:port of the server), HARNESS_TOKEN, HARNESS_USER.
// Exit status: 0 pass, 1 fail, 3 this node has no WebSocket.
"use strict";

const fs = require("fs");
const vm = require("vm");

const [appPath, indexPath, scenarioName] = process.argv.slice(2);
const host = process.env.HARNESS_HOST;
const token = process.env.HARNESS_TOKEN;
const user = process.env.HARNESS_USER;

if (typeof WebSocket !== "function") {
  console.log("this node has no WebSocket");
  process.exit(3);
}

// ---- fake DOM ---------------------------------------------------------------------------

class FakeElement {
  constructor(tag, id) {
    this.tagName = tag.toUpperCase();
    this.id = id || "";
    this.children = [];
    this.listeners = {};
    this.attributes = {};
    this.dataset = {};
    this.style = {};
    this.value = "";
    this.checked = false;
    this.disabled = false;
    this.hidden = false;
    this.text = "";
    this.className = "";
    this.type = "";
    this.scrollTop = 0;
    this.scrollHeight = 0;
    this.srcObject = null;
    const classes = new Set();
    this.classList = {
      add: (c) => classes.add(c),
      remove: (c) => classes.delete(c),
      contains: (c) => classes.has(c),
      toggle: (c, on) => {
        if (on === undefined) on = !classes.has(c);
        if (on) classes.add(c); else classes.delete(c);
        return on;
      },
    };
  }
  get textContent() {
    return this.children.length ? this.children.map((c) => c.textContent).join("\n") : this.text;
  }
  set textContent(v) {
    this.children = [];
    this.text = String(v);
  }
  get firstChild() { return this.children[0] || null; }
  appendChild(c) { this.children.push(c); return c; }
  removeChild(c) {
    const i = this.children.indexOf(c);
    if (i >= 0) this.children.splice(i, 1);
    return c;
  }
  replaceChildren(...cs) { this.children = cs; }
  setAttribute(k, v) { this.attributes[k] = String(v); }
  getAttribute(k) { return k in this.attributes ? this.attributes[k] : null; }
  addEventListener(type, fn) { (this.listeners[type] = this.listeners[type] || []).push(fn); }
  dispatch(type, extra) {
    const ev = Object.assign({ type: type, target: this, preventDefault() {} }, extra);
    for (const fn of this.listeners[type] || []) fn(ev);
  }
  click() {
    if (this.disabled) throw new Error("clicked disabled " + (this.id || this.textContent));
    this.dispatch("click");
  }
  focus() {}
  play() { return Promise.resolve(); }
}

const elements = new Map();
const html = fs.readFileSync(indexPath, "utf8");
for (const m of html.matchAll(/<(\w+)\b([^>]*)\sid="([^"]+)"([^>]*)>/g)) {
  const attrs = m[2] + " " + m[4];
  const el = new FakeElement(m[1], m[3]);
  el.hidden = /\shidden\b/.test(" " + attrs);
  el.disabled = /\sdisabled\b/.test(" " + attrs);
  el.checked = /\schecked\b/.test(" " + attrs);
  const value = /\svalue="([^"]*)"/.exec(" " + attrs);
  if (value) el.value = value[1];
  if (m[1] === "select") {
    const first = /<option value="([^"]*)"/.exec(html.slice(m.index));
    el.value = first ? first[1] : "";
  }
  elements.set(m[3], el);
}

const documentListeners = {};
const document = {
  title: "",
  getElementById: (id) => elements.get(id) || null,
  querySelectorAll: (sel) => {
    if (sel !== "[id]") throw new Error("unsupported selector " + sel);
    return Array.from(elements.values());
  },
  createElement: (tag) => new FakeElement(tag),
  addEventListener: (type, fn) => { (documentListeners[type] = documentListeners[type] || []).push(fn); },
};

// ---- fake WebRTC -----------------------------------------------------------------------

// What current Chromium offers for audio (RED included), in its order.
const AUDIO_CAPS = [
  { mimeType: "audio/opus", clockRate: 48000, channels: 2, pt: 111 },
  { mimeType: "audio/red", clockRate: 48000, channels: 2, pt: 63 },
  { mimeType: "audio/G722", clockRate: 8000, pt: 9 },
  { mimeType: "audio/PCMU", clockRate: 8000, pt: 0 },
  { mimeType: "audio/PCMA", clockRate: 8000, pt: 8 },
  { mimeType: "audio/CN", clockRate: 8000, pt: 13 },
  { mimeType: "audio/telephone-event", clockRate: 48000, pt: 110 },
  { mimeType: "audio/telephone-event", clockRate: 8000, pt: 126 },
];

const peers = [];
const dtmfSent = [];

class FakeTrack {
  constructor(kind) {
    this.kind = kind;
    this.enabled = true;
    this.stopped = false;
  }
  stop() { this.stopped = true; }
}

class FakeMediaStream {
  constructor(tracks) { this.tracks = tracks ? tracks.slice() : []; }
  getTracks() { return this.tracks.slice(); }
  getAudioTracks() { return this.tracks.filter((t) => t.kind === "audio"); }
  getVideoTracks() { return this.tracks.filter((t) => t.kind === "video"); }
  addTrack(t) { this.tracks.push(t); }
}

class FakeTransceiver {
  constructor(kind, fromRemote) {
    this.kind = kind;
    this.fromRemote = fromRemote;
    this.direction = fromRemote ? "recvonly" : "sendrecv";
    this.receiver = { track: new FakeTrack(kind) };
    this.sender = { track: null, dtmf: null };
    this.prefs = null;
  }
  setCodecPreferences(codecs) { this.prefs = codecs; }
}

const RTCRtpReceiver = {
  getCapabilities: (kind) => (kind === "audio" ? { codecs: AUDIO_CAPS.map((c) => Object.assign({}, c)) } : null),
};

class FakePeerConnection {
  constructor(config) {
    this.config = config;
    this.transceivers = [];
    this.signalingState = "stable";
    this.iceConnectionState = "new";
    this.connectionState = "new";
    this.localDescription = null;
    this.remoteDescription = null;
    this.remoteCandidates = [];
    this.gathered = false;
    this.closed = false;
    peers.push(this);
  }
  addTrack(track) {
    let t = this.transceivers.find((x) => x.kind === track.kind && x.fromRemote && !x.sender.track);
    if (!t) {
      t = new FakeTransceiver(track.kind, false);
      this.transceivers.push(t);
    }
    t.sender.track = track;
    t.direction = "sendrecv";
    if (track.kind === "audio") {
      t.sender.dtmf = {
        canInsertDTMF: true,
        toneBuffer: "",
        insertDTMF: (tones, duration, gap) => dtmfSent.push({ tones: tones, duration: duration, gap: gap }),
      };
    }
    return t.sender;
  }
  getTransceivers() { return this.transceivers.slice(); }
  getSenders() { return this.transceivers.map((t) => t.sender); }
  sdp(type) {
    const lines = ["v=0", "o=- 1 2 IN IP4 127.0.0.1", "s=-", "t=0 0", "a=group:BUNDLE 0"];
    this.transceivers.forEach((t, i) => {
      let codecs = t.kind === "audio" ? (t.prefs || AUDIO_CAPS) : [{ mimeType: "video/VP8", clockRate: 90000, pt: 96 }];
      if (type === "answer") {
        const offered = this.remoteDescription.sdp.toLowerCase();
        codecs = codecs.filter((c) => offered.includes(c.mimeType.split("/")[1].toLowerCase() + "/" + c.clockRate));
      }
      lines.push("m=" + t.kind + " 9 UDP/TLS/RTP/SAVPF " + codecs.map((c) => c.pt).join(" "));
      lines.push("a=mid:" + i, "a=" + t.direction);
      codecs.forEach((c) => lines.push("a=rtpmap:" + c.pt + " " + c.mimeType.split("/")[1] + "/" + c.clockRate + (c.channels ? "/" + c.channels : "")));
    });
    return lines.join("\r\n") + "\r\n";
  }
  async createOffer() { return { type: "offer", sdp: this.sdp("offer") }; }
  async createAnswer() {
    if (!this.remoteDescription || this.remoteDescription.type !== "offer") throw new Error("createAnswer without a remote offer");
    return { type: "answer", sdp: this.sdp("answer") };
  }
  async setLocalDescription(d) {
    if (this.closed) throw new Error("closed");
    if (d.type === "rollback") {
      this.signalingState = "stable";
      return;
    }
    this.localDescription = { type: d.type, sdp: d.sdp };
    this.signalingState = d.type === "offer" ? "have-local-offer" : "stable";
    if (!this.gathered) {
      this.gathered = true;
      // A host candidate, then end-of-candidates twice (an empty candidate, then null),
      // the way Firefox reports it.
      setTimeout(() => {
        const c = { candidate: "candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host", sdpMid: "0", sdpMLineIndex: 0, usernameFragment: "pageufrag" };
        this.onicecandidate({ candidate: Object.assign({ toJSON: () => Object.assign({}, c) }, c) });
        this.onicecandidate({ candidate: { candidate: "", sdpMid: "0", sdpMLineIndex: 0 } });
        this.onicecandidate({ candidate: null });
      }, 5);
    }
  }
  async setRemoteDescription(d) {
    if (this.closed) throw new Error("closed");
    if (d.type === "rollback") {
      this.signalingState = "stable";
      return;
    }
    this.remoteDescription = { type: d.type, sdp: d.sdp };
    if (d.type === "offer") {
      this.signalingState = "have-remote-offer";
      for (const m of d.sdp.matchAll(/^m=(audio|video) /gm)) {
        if (!this.transceivers.some((t) => t.kind === m[1])) this.transceivers.push(new FakeTransceiver(m[1], true));
      }
    } else {
      this.signalingState = d.type === "pranswer" ? "have-local-pranswer" : "stable";
    }
    setTimeout(() => {
      if (this.closed) return;
      this.ontrack({ track: new FakeTrack("audio"), streams: [] });
      this.iceConnectionState = "connected";
      this.oniceconnectionstatechange();
      this.connectionState = "connected";
      this.onconnectionstatechange();
    }, 5);
  }
  async addIceCandidate(c) {
    if (!this.remoteDescription) throw new Error("addIceCandidate before the remote description");
    this.remoteCandidates.push(c === undefined ? null : c);
  }
  async getStats() {
    return new Map([
      ["in", { id: "in", type: "inbound-rtp", kind: "audio", codecId: "co", packetsReceived: 98, packetsLost: 2, jitter: 0.004 }],
      ["co", { id: "co", type: "codec", mimeType: "audio/opus" }],
      ["rin", { id: "rin", type: "remote-inbound-rtp", kind: "audio", roundTripTime: 0.012, packetsLost: 1 }],
    ]);
  }
  close() {
    this.closed = true;
    this.signalingState = "closed";
  }
}

// ---- the page's world --------------------------------------------------------------------

const storage = new Map();
const sandbox = {
  console: console,
  setTimeout: setTimeout,
  clearTimeout: clearTimeout,
  setInterval: setInterval,
  clearInterval: clearInterval,
  URL: URL,
  atob: atob,
  WebSocket: WebSocket,
  document: document,
  location: { protocol: "http:", host: host },
  isSecureContext: true,
  localStorage: {
    getItem: (k) => (storage.has(k) ? storage.get(k) : null),
    setItem: (k, v) => storage.set(k, String(v)),
  },
  navigator: {
    mediaDevices: {
      getUserMedia: async (constraints) => {
        const tracks = [new FakeTrack("audio")];
        if (constraints.video) tracks.push(new FakeTrack("video"));
        return new FakeMediaStream(tracks);
      },
    },
  },
  MediaStream: FakeMediaStream,
  RTCPeerConnection: FakePeerConnection,
  RTCRtpTransceiver: FakeTransceiver,
  RTCRtpReceiver: RTCRtpReceiver,
};
sandbox.window = sandbox;
vm.createContext(sandbox);
vm.runInContext(fs.readFileSync(appPath, "utf8"), sandbox, { filename: "app.js" });

// ---- scenario helpers ---------------------------------------------------------------------

const $ = (id) => {
  const el = elements.get(id);
  if (!el) throw new Error("no element " + id);
  return el;
};

function fail(msg) {
  throw new Error(msg);
}

async function waitFor(what, pred, ms) {
  const deadline = Date.now() + (ms || 5000);
  for (;;) {
    let ok = false;
    try {
      ok = pred();
    } catch (e) {
      ok = false;
    }
    if (ok) return;
    if (Date.now() > deadline) {
      fail("timed out waiting for " + what + "\nstatus: " + $("status").textContent + "\ncall: " +
        $("callState").textContent + "\nerror: " + $("errorCode").textContent + " " + $("errorMessage").textContent +
        "\nlog:\n" + $("log").textContent);
    }
    await new Promise((r) => setTimeout(r, 10));
  }
}

const has = (id, text) => () => $(id).textContent.includes(text);

function submit(id) {
  $(id).dispatch("submit");
}

function key(digit) {
  const b = $("keypad").children.find((x) => x.textContent === digit);
  if (!b) fail("no keypad key " + digit);
  b.click();
}

async function loginAs(tok) {
  $("token").value = tok;
  $("token").dispatch("input");
  submit("loginForm");
}

// ---- scenarios ------------------------------------------------------------------------------

const scenarios = {
  // The page places a call: a bad token first, then login, invite with an offer (no RED),
  // state transitions, the gateway's answer and candidates, DTMF both ways and both paths,
  // mute, stats, hang up, log out.
  async outgoing() {
    if ($("server").value !== "ws://" + host + "/ws") fail("default server URL " + $("server").value);
    if ($("keypad").children.length !== 16) fail("keypad has " + $("keypad").children.length + " keys");

    await loginAs("bm90LWEtdG9rZW4");
    await waitFor("the INVALID_TOKEN error", has("errorCode", "INVALID_TOKEN"));
    if ($("error").hidden) fail("error banner hidden");

    await loginAs(token);
    if (!$("tokenInfo").textContent.includes("Token for user " + user)) fail("token info: " + $("tokenInfo").textContent);
    await waitFor("login", has("status", "Logged in as " + user));
    if ($("callButton").disabled) fail("call button disabled after login");

    $("callee").value = "1001";
    $("content").value = "hello";
    submit("callForm");
    await waitFor("the answered call", has("callState", "In call with 1001"));
    for (const s of ["SENT_TO_REMOTE", "RECEIVED_BY_REMOTE - Ringing (SIP 180)", "ACCEPTED_BY_REMOTE - Answered (SIP 200)"]) {
      if (!$("stateLog").textContent.includes(s)) fail("state log lacks " + s + ":\n" + $("stateLog").textContent);
    }
    const pc = peers[0];
    if (pc.config.bundlePolicy !== "max-bundle") fail("bundlePolicy " + pc.config.bundlePolicy);
    await waitFor("the gateway's answer and candidates", () =>
      pc.remoteDescription && pc.remoteDescription.type === "answer" && pc.remoteCandidates.length === 2);
    if (!pc.remoteCandidates[0] || pc.remoteCandidates[0].candidate.indexOf("typ host") < 0) fail("gateway candidate not added");
    if (pc.remoteCandidates[1] !== null) fail("end-of-candidates not passed to the browser");
    await waitFor("remote audio attached", () => $("remoteAudio").srcObject !== null && $("remoteAudio").srcObject.getAudioTracks().length === 1);
    if ($("cancelButton").disabled === false) fail("cancel enabled in an answered call");

    // DTMF: automatic mode goes in-band through RTCDTMFSender, message mode sends dtmf.
    key("5");
    if (dtmfSent.length !== 1 || dtmfSent[0].tones !== "5" || dtmfSent[0].duration !== 100) fail("in-band DTMF " + JSON.stringify(dtmfSent));
    $("dtmfMode").value = "message";
    key("#");
    await waitFor("DTMF sent", has("dtmfSent", "5#"));
    await waitFor("DTMF received", has("dtmfReceived", "9"));

    $("muteButton").click();
    if ($("muteButton").getAttribute("aria-pressed") !== "true") fail("mute not pressed");
    if (pc.transceivers[0].sender.track.enabled) fail("microphone still on after mute");

    await waitFor("stats", () => /RTT 12 ms/.test($("stats").textContent) && /lost 2/.test($("stats").textContent));
    await waitFor("the call timer", () => /^0:0[0-9]$/.test($("callTimer").textContent));

    $("hangupButton").click();
    await waitFor("hang up", has("callState", "you hung up"));
    if (!pc.closed) fail("peer connection not closed");
    if (!pc.transceivers[0].sender.track.stopped) fail("microphone not released");

    $("logoutButton").click();
    await waitFor("logout", has("status", "Logged out"));
  },

  // The outcomes of a placed call other than an answer: failure, refusal, cancel.
  async outcomes() {
    await loginAs(token);
    await waitFor("login", has("status", "Logged in as " + user));

    $("callee").value = "1404";
    submit("callForm");
    await waitFor("the failure", has("callState", "Call failed: the other side is not reachable, SIP 404 Not Found."));
    if ($("errorCode").textContent !== "PEER_OFFLINE" || $("error").hidden) fail("error banner: " + $("errorCode").textContent);
    if (!$("stateLog").textContent.includes("FAILURE - Failed (SIP 404, PEER_OFFLINE, Not Found)")) fail("state log: " + $("stateLog").textContent);
    if (!peers[0].closed) fail("peer connection left open");

    $("callee").value = "1486";
    submit("callForm");
    await waitFor("the refusal", has("callState", "Refused by 1486 (SIP 486, response: busy)."));

    $("callee").value = "1009";
    submit("callForm");
    await waitFor("ringing", has("callState", "Ringing at 1009"));
    if ($("hangupButton").disabled === false) fail("hang up enabled while ringing");
    $("cancelButton").click();
    await waitFor("the cancel", has("callState", "Canceled."));
    if (!$("stateLog").textContent.includes("CANCELED")) fail("state log: " + $("stateLog").textContent);
    if ($("callButton").disabled) fail("cannot call again");
  },

  // The page answers a call: the invitation shows, received is sent, accept sends the answer,
  // a second call while busy is refused with 486, DTMF from SIP shows, the SIP side hangs up.
  async incoming() {
    await loginAs(token);
    await waitFor("the incoming call", () => !$("incoming").hidden);
    if ($("incomingCaller").textContent !== "1001") fail("caller " + $("incomingCaller").textContent);
    if ($("incomingContent").textContent !== "hi there") fail("content " + $("incomingContent").textContent);
    if (!$("stateLog").textContent.includes("INVITATION_RECEIVED")) fail("state log: " + $("stateLog").textContent);

    // The fake SIP side runs the whole call at once: check what the page recorded.
    $("acceptButton").click();
    await waitFor("the accepted call", has("stateLog", "ACCEPTED - Connected"));
    if (!$("stateLog").textContent.includes("ACCEPT_SENT_TO_LOCAL")) fail("no ACCEPT_SENT_TO_LOCAL: " + $("stateLog").textContent);
    const pc = peers[0];
    if (!pc.localDescription || pc.localDescription.type !== "answer") fail("no local answer");
    if (!pc.transceivers.some((t) => t.fromRemote && t.sender.track)) fail("microphone not sent on the offered transceiver");

    await waitFor("busy refusal of a second call", () => $("log").textContent.includes("busy: refusing the call from 1002"));
    await waitFor("DTMF from SIP", has("dtmfReceived", "7"));
    await waitFor("the SIP side's hangup", has("callState", "1001 hung up (BYE, SIP 200)"));
    if (!pc.closed) fail("peer connection not closed");
    if (pc.remoteCandidates.length !== 2 || pc.remoteCandidates[1] !== null) fail("remote candidates " + JSON.stringify(pc.remoteCandidates));
  },
};

const scenario = scenarios[scenarioName];
if (!scenario) {
  console.log("unknown scenario " + scenarioName);
  process.exit(1);
}
const timeout = setTimeout(() => {
  console.log("scenario timed out");
  process.exit(1);
}, 30000);
scenario().then(() => {
  clearTimeout(timeout);
  console.log("PASS");
  process.exit(0);
}, (e) => {
  console.log("FAIL: " + e.message);
  process.exit(1);
});
