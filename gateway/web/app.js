// siprtc web phone.
//
// Logs in to the gateway's signalling WebSocket, places calls (LocalInvitation) and answers them
// (RemoteInvitation), and runs the WebRTC side of each call with the gateway as the peer. It uses
// only the protocol documented in docs/signaling.md: every request goes through request(), every
// message from the gateway through the handler registered with on(). Plain script, no build step,
// no external resources: it must run as is, offline, in current Chromium and Firefox.
(function () {
  "use strict";

  const SUBPROTOCOL = "siprtc.signaling.v1";
  const SIGNALING_PATH = "/ws";
  const KEYPAD = ["1", "2", "3", "A", "4", "5", "6", "B", "7", "8", "9", "C", "*", "0", "#", "D"];
  const MAX_LOG_LINES = 300;

  // What the protocol's states and codes mean to the person using the page.
  const LOCAL_STATES = {
    "SENT_TO_REMOTE": "Calling",
    "RECEIVED_BY_REMOTE": "Ringing",
    "ACCEPTED_BY_REMOTE": "Answered",
    "REFUSED_BY_REMOTE": "Refused",
    "CANCELED": "Canceled",
    "FAILURE": "Failed",
  };
  const REMOTE_STATES = {
    "INVITATION_RECEIVED": "Incoming call",
    "ACCEPT_SENT_TO_LOCAL": "Answer sent, connecting",
    "ACCEPTED": "Connected",
    "REFUSED": "Declined",
    "CANCELED": "The caller gave up",
    "FAILURE": "Failed",
  };
  const FAILURE_CODES = {
    "PEER_OFFLINE": "the other side is not reachable",
    "PEER_NO_RESPONSE": "the other side did not respond",
    "INVITATION_EXPIRE": "the call was not answered in time",
    "NOT_LOGGEDIN": "the session ended",
    "ACCEPT_FAILURE": "the answer did not reach the caller",
  };
  const CLOSE_CODES = {
    1000: "connection closed",
    1001: "the gateway is shutting down",
    1006: "connection lost",
    1008: "too many messages, or the page did not keep up",
    1009: "a message was too large",
    4001: "logged in elsewhere (this page does not log in again by itself: press Reconnect to take over)",
    4002: "not logged in in time",
    4003: "too many failed logins",
  };

  // ProtocolError carries an error code (the gateway's, or the page's own) and a message.
  class ProtocolError extends Error {
    constructor(code, message) {
      super(message);
      this.code = code;
    }
  }

  const ui = {};
  let ws = null; // the signalling WebSocket
  let abandonConnect = null; // rejects the connect() in progress
  let sessionUser = ""; // the logged-in user, "" when logged out
  let nextRequestId = 1;
  const pending = new Map(); // request id -> {type, resolve, reject}
  const handlers = Object.create(null); // message type -> handler
  let call = null; // the one call the page handles at a time
  let ticker = null; // the call timer and stats interval
  const ringer = { ctx: null, timer: null };

  // ---- the protocol -------------------------------------------------------------------------

  function on(type, handler) {
    handlers[type] = handler;
  }

  function send(msg) {
    if (!ws || ws.readyState !== WebSocket.OPEN) {
      throw new ProtocolError("NOT_CONNECTED", "not connected to the gateway");
    }
    logLine("→ " + summarize(msg), "out");
    ws.send(JSON.stringify(msg));
  }

  // request sends a request and resolves with its "ok" reply, or rejects with the "error" reply's
  // code and message. onOK, if given, runs as soon as the "ok" arrives, before the next message
  // is handled: an await may resume only after the events that follow the reply (several
  // messages can be dispatched in one task), so state those events need is set there.
  function request(type, fields, onOK) {
    const id = String(nextRequestId++);
    const msg = Object.assign({ type: type, id: id }, fields);
    return new Promise(function (resolve, reject) {
      pending.set(id, { type: type, resolve: resolve, reject: reject, onOK: onOK });
      try {
        send(msg);
      } catch (e) {
        pending.delete(id);
        reject(e);
      }
    });
  }

  function settle(msg, err) {
    const p = pending.get(msg.id);
    if (!p) {
      logLine("reply to an unknown request " + msg.id, "err");
      return;
    }
    pending.delete(msg.id);
    if (err) {
      p.reject(err);
      return;
    }
    if (p.onOK) {
      try {
        p.onOK(msg);
      } catch (e) {
        reportFailure(e);
      }
    }
    p.resolve(msg);
  }

  function rejectPending(code, message) {
    const all = Array.from(pending.values());
    pending.clear();
    for (const p of all) {
      p.reject(new ProtocolError(code, message));
    }
  }

  function onSocketMessage(ev) {
    if (typeof ev.data !== "string") {
      logLine("ignored a binary message", "err");
      return;
    }
    let msg;
    try {
      msg = JSON.parse(ev.data);
    } catch (e) {
      logLine("ignored malformed JSON from the gateway", "err");
      return;
    }
    if (!msg || typeof msg !== "object" || typeof msg.type !== "string") {
      logLine("ignored a message without a type", "err");
      return;
    }
    logLine("← " + summarize(msg), "in");
    const handler = handlers[msg.type];
    if (!handler) {
      logLine("ignored message type " + msg.type + " (newer gateway?)");
      return;
    }
    try {
      handler(msg);
    } catch (e) {
      reportFailure(e);
    }
  }

  on("ok", function (msg) {
    settle(msg, null);
  });

  on("error", function (msg) {
    const err = new ProtocolError(msg.code || "ERROR", msg.message || "the gateway refused a request");
    if (msg.id && pending.has(msg.id)) {
      settle(msg, err);
      return;
    }
    reportFailure(err);
  });

  on("localInvitation", onLocalInvitation);
  on("remoteInvitation", onRemoteInvitation);
  on("sdp", onRemoteSDP);
  on("candidate", onRemoteCandidate);
  on("dtmf", onRemoteDTMF);
  on("hangup", onRemoteHangup);
  on("kicked", function (msg) {
    reportFailure(new ProtocolError("KICKED", "logged in elsewhere" + (msg.reason ? ": " + msg.reason : "")));
  });

  // ---- connection and login -----------------------------------------------------------------

  function defaultServerURL() {
    if (!location.host) {
      return "";
    }
    return (location.protocol === "https:" ? "wss://" : "ws://") + location.host + SIGNALING_PATH;
  }

  // normalizeURL accepts ws(s)://, http(s):// or a bare host:port; a URL without a path gets /ws.
  function normalizeURL(text) {
    if (!text) {
      throw new ProtocolError("INVALID_ARGUMENT", "enter the gateway's signalling URL");
    }
    if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(text)) {
      text = (location.protocol === "https:" ? "wss://" : "ws://") + text;
    }
    let u;
    try {
      u = new URL(text);
    } catch (e) {
      throw new ProtocolError("INVALID_ARGUMENT", "not a URL: " + text);
    }
    if (u.protocol === "http:") {
      u.protocol = "ws:";
    } else if (u.protocol === "https:") {
      u.protocol = "wss:";
    }
    if (u.protocol !== "ws:" && u.protocol !== "wss:") {
      throw new ProtocolError("INVALID_ARGUMENT", "the signalling URL must start with ws:// or wss://");
    }
    if (u.pathname === "" || u.pathname === "/") {
      u.pathname = SIGNALING_PATH;
    }
    return u.toString();
  }

  function connect() {
    return new Promise(function (resolve, reject) {
      closeSocket();
      let url;
      try {
        url = normalizeURL(ui.server.value.trim());
      } catch (e) {
        reject(e);
        return;
      }
      let sock;
      try {
        sock = new WebSocket(url, [SUBPROTOCOL]);
      } catch (e) {
        reject(new ProtocolError("INVALID_ARGUMENT", "cannot open " + url + ": " + e.message));
        return;
      }
      ws = sock;
      abandonConnect = function () {
        reject(new ProtocolError("NOT_CONNECTED", "connecting to " + url + " was abandoned"));
      };
      setStatus("Connecting to " + url + "…");
      sock.onopen = function () {
        abandonConnect = null;
        logLine("connected to " + url + (sock.protocol ? " (" + sock.protocol + ")" : ""));
        resolve();
      };
      sock.onmessage = function (ev) {
        if (sock === ws) {
          onSocketMessage(ev);
        }
      };
      sock.onclose = function (ev) {
        abandonConnect = null;
        if (sock === ws) {
          onSocketClose(ev);
        }
        reject(new ProtocolError("NOT_CONNECTED", "could not connect to " + url));
      };
    });
  }

  // closeSocket closes the connection on the page's own initiative (no error shown).
  function closeSocket() {
    const sock = ws;
    ws = null;
    if (abandonConnect) {
      abandonConnect();
      abandonConnect = null;
    }
    if (!sock) {
      return;
    }
    sock.onopen = sock.onmessage = sock.onclose = null;
    try {
      sock.close(1000, "bye");
    } catch (e) {
      // already closed
    }
    rejectPending("NOT_CONNECTED", "disconnected");
    dropSession("connection closed");
  }

  function onSocketClose(ev) {
    ws = null;
    rejectPending("NOT_CONNECTED", "the connection to the gateway closed");
    const wasLoggedIn = sessionUser !== "";
    dropSession("connection closed");
    const why = CLOSE_CODES[ev.code] || "closed";
    const detail = why + (ev.reason ? " (" + ev.reason + ")" : "");
    setStatus("Disconnected: " + detail + ".");
    if (ev.code !== 1000 || wasLoggedIn) {
      reportFailure(new ProtocolError("CLOSED " + ev.code, detail));
    }
    updateControls();
  }

  // dropSession forgets the session and the call after the connection is gone: the gateway
  // ends them too.
  function dropSession(reason) {
    sessionUser = "";
    if (call) {
      endCall(call, "Call ended: " + reason + ".");
    }
  }

  // parseToken reads the user id and expiry a token carries (it cannot check the signature).
  function parseToken(token) {
    try {
      let b64 = token.replace(/-/g, "+").replace(/_/g, "/").replace(/=+$/, "");
      while (b64.length % 4) {
        b64 += "=";
      }
      const raw = atob(b64);
      const macStart = raw.length - 32;
      if (macStart < 4 || raw.charAt(macStart - 1) !== ".") {
        return null;
      }
      const payload = raw.slice(0, macStart - 1);
      const dot = payload.lastIndexOf(".");
      const expiry = Number(payload.slice(dot + 1));
      if (dot <= 0 || !/^[0-9]+$/.test(payload.slice(dot + 1)) || !Number.isSafeInteger(expiry)) {
        return null;
      }
      return { user: payload.slice(0, dot), expiry: new Date(expiry * 1000) };
    } catch (e) {
      return null;
    }
  }

  function showTokenInfo() {
    const token = ui.token.value.trim();
    const info = token ? parseToken(token) : null;
    ui.tokenInfo.classList.remove("bad");
    if (!token) {
      ui.tokenInfo.textContent = "Get one with: siprtc gateway token --user YOUR_ID (see Help).";
    } else if (!info) {
      ui.tokenInfo.textContent = "This does not look like a siprtc token.";
      ui.tokenInfo.classList.add("bad");
    } else if (info.expiry.getTime() <= Date.now()) {
      ui.tokenInfo.textContent = "Token for user " + info.user + ", expired " + info.expiry.toLocaleString() + ".";
      ui.tokenInfo.classList.add("bad");
    } else {
      ui.tokenInfo.textContent = "Token for user " + info.user + ", valid until " + info.expiry.toLocaleString() + ".";
    }
    updateControls();
  }

  async function login(ev) {
    if (ev) {
      ev.preventDefault();
    }
    hideError();
    const token = ui.token.value.trim();
    if (!token) {
      reportFailure(new ProtocolError("INVALID_ARGUMENT", "enter a token (see Help)"));
      ui.token.focus();
      return;
    }
    const info = parseToken(token);
    const wanted = ui.user.value.trim();
    if (info && wanted && info.user !== wanted) {
      reportFailure(new ProtocolError("INVALID_TOKEN", "this token is for user " + info.user + ", not " + wanted));
      return;
    }
    ui.loginButton.disabled = true;
    try {
      if (!ws || ws.readyState !== WebSocket.OPEN) {
        await connect();
      }
      await request("login", { token: token }, function (ok) {
        // Invitations waiting for this user follow the reply at once.
        sessionUser = ok.user || (info && info.user) || wanted;
        setStatus("Logged in as " + sessionUser + ".", true);
        updateControls();
      });
      ui.user.value = sessionUser;
      remember("server", ui.server.value.trim());
      remember("user", sessionUser);
    } catch (e) {
      reportFailure(e);
      // The gateway keeps a connection after a failed login but closes it 10 s later: close it
      // now rather than show that as a second error.
      if (!sessionUser) {
        closeSocket();
        setStatus("Not logged in.");
      }
    }
    updateControls();
  }

  async function logout() {
    hideError();
    try {
      // The gateway ends this session's calls first, with their events, then replies.
      await request("logout");
      setStatus("Logged out.");
    } catch (e) {
      reportFailure(e);
    }
    closeSocket();
    updateControls();
  }

  async function reconnect() {
    hideError();
    closeSocket();
    await login(null);
  }

  // ---- placing a call (LocalInvitation): the page offers ------------------------------------

  async function placeCall(ev) {
    ev.preventDefault();
    hideError();
    if (!sessionUser) {
      reportFailure(new ProtocolError("NOT_LOGGEDIN", "log in first"));
      return;
    }
    if (call) {
      reportFailure(new ProtocolError("INVALID_STATE", "finish the current call first"));
      return;
    }
    const callee = ui.callee.value.trim();
    if (!/^[\x21-\x7e]{1,64}$/.test(callee)) {
      reportFailure(new ProtocolError("INVALID_ARGUMENT", "enter the number to call (1 to 64 characters, no spaces)"));
      ui.callee.focus();
      return;
    }
    remember("callee", callee);
    const c = newCall("local", callee);
    call = c;
    beginCallUI(c, "Calling " + callee);
    try {
      await startMedia(c, ui.video.checked);
      if (c.ended) {
        return;
      }
      createPeer(c);
      addLocalTracks(c);
      applyCodecPreferences(c.pc);
      const offer = await c.pc.createOffer();
      await c.pc.setLocalDescription(offer);
      if (c.ended) {
        return;
      }
      if (c.cancelRequested) {
        endCall(c, "Canceled.");
        return;
      }
      const fields = { callee: callee, description: descriptionOf(c.pc.localDescription) };
      if (ui.content.value) {
        fields.content = ui.content.value;
      }
      await request("invite", fields, function (ok) {
        // The invitation's events follow the reply at once and are matched by this id.
        c.callId = ok.callId;
      });
      if (c.ended) {
        return;
      }
      c.canTrickle = true;
      flushCandidates(c);
      updateControls();
      if (c.cancelRequested) {
        await cancelCall();
      }
    } catch (e) {
      if (!c.ended) {
        reportFailure(e);
        endCall(c, "Call failed.");
      }
    }
  }

  async function cancelCall() {
    const c = call;
    if (!c || c.kind !== "local" || c.established) {
      return;
    }
    if (!c.callId) {
      // The invite's reply (with the call id) is not in yet: cancel as soon as it is.
      c.cancelRequested = true;
      setCallState("Canceling…");
      return;
    }
    try {
      await request("cancel", { callId: c.callId });
    } catch (e) {
      reportFailure(e);
      if (e.code === "UNKNOWN_CALL") {
        endCall(c, "Call ended.");
      }
    }
  }

  function onLocalInvitation(msg) {
    const c = callFor(msg.callId, "local");
    if (!c) {
      logLine("event for a call this page does not hold: " + msg.callId);
      return;
    }
    c.state = msg.state;
    recordState(msg.state, LOCAL_STATES[msg.state], outcomeDetails(msg));
    switch (msg.state) {
      case "SENT_TO_REMOTE":
        setCallState("Calling " + c.peer + "…");
        break;
      case "RECEIVED_BY_REMOTE":
        setCallState("Ringing at " + c.peer + "…");
        break;
      case "ACCEPTED_BY_REMOTE":
        establish(c);
        break;
      case "REFUSED_BY_REMOTE":
        endCall(c, "Refused by " + c.peer + outcomeDetails(msg) + ".");
        break;
      case "CANCELED":
        endCall(c, "Canceled.");
        break;
      case "FAILURE":
        reportFailure(new ProtocolError(msg.code || "FAILURE", failureText(msg)));
        endCall(c, "Call failed: " + failureText(msg) + ".");
        break;
      default:
        logLine("unknown invitation state " + msg.state);
    }
    updateControls();
  }

  // ---- answering a call (RemoteInvitation): the gateway offers -------------------------------

  function onRemoteInvitation(msg) {
    if (msg.state === "INVITATION_RECEIVED") {
      offerIncoming(msg);
      return;
    }
    const c = callFor(msg.callId, "remote");
    if (!c) {
      logLine("event for a call this page does not hold: " + msg.callId);
      return;
    }
    c.state = msg.state;
    recordState(msg.state, REMOTE_STATES[msg.state], outcomeDetails(msg));
    switch (msg.state) {
      case "ACCEPT_SENT_TO_LOCAL":
        setCallState("Answer sent to " + c.peer + ", connecting…");
        break;
      case "ACCEPTED":
        establish(c);
        break;
      case "REFUSED":
        endCall(c, "Declined the call from " + c.peer + ".");
        break;
      case "CANCELED":
        endCall(c, "Missed call from " + c.peer + (msg.reason ? " (" + msg.reason + ")" : "") + ".");
        break;
      case "FAILURE":
        reportFailure(new ProtocolError(msg.code || "FAILURE", failureText(msg)));
        endCall(c, "Call from " + c.peer + " failed: " + failureText(msg) + ".");
        break;
      default:
        logLine("unknown invitation state " + msg.state);
    }
    updateControls();
  }

  function offerIncoming(msg) {
    if (call) {
      // One call at a time: answer "busy" (SIP 486) so the caller is not left ringing.
      logLine("busy: refusing the call from " + msg.caller);
      request("refuse", { callId: msg.callId, sipCode: 486, response: "busy" }).catch(reportFailure);
      return;
    }
    const c = newCall("remote", msg.caller);
    c.callId = msg.callId;
    c.state = msg.state;
    c.offer = msg.description || null;
    call = c;
    beginCallUI(c, "Incoming call from " + msg.caller);
    recordState(msg.state, REMOTE_STATES[msg.state], "");
    ui.incomingCaller.textContent = msg.caller;
    ui.incomingContent.textContent = msg.content || "";
    ui.incomingContentRow.hidden = !msg.content;
    ui.incomingChannel.textContent = msg.channelId || "";
    ui.incomingChannelRow.hidden = !msg.channelId;
    ui.incoming.hidden = false;
    document.title = "Incoming call: " + msg.caller + " - siprtc web phone";
    setStatus("Incoming call from " + msg.caller + ".", true);
    startRinging();
    // Acknowledge at once: the gateway then sends SIP 180 to the caller.
    request("received", { callId: c.callId }).catch(reportFailure);
    updateControls();
  }

  async function acceptCall() {
    const c = call;
    if (!c || c.kind !== "remote" || c.state !== "INVITATION_RECEIVED" || c.accepting) {
      return;
    }
    hideError();
    c.accepting = true;
    stopRinging();
    updateControls();
    try {
      const offerHasVideo = !c.offer || /^m=video [1-9]/m.test(c.offer.sdp || "");
      await startMedia(c, ui.video.checked && offerHasVideo);
      if (c.ended) {
        return;
      }
      createPeer(c);
      const fields = { callId: c.callId };
      await enqueue(c, async function () {
        if (c.offer) {
          await c.pc.setRemoteDescription(c.offer);
          c.remoteDescriptionSet = true;
          addLocalTracks(c); // addTrack takes the transceivers the offer created
          applyCodecPreferences(c.pc);
          await c.pc.setLocalDescription(await c.pc.createAnswer());
          fields.description = descriptionOf(c.pc.localDescription);
          await flushRemoteCandidates(c);
        } else {
          // No offer came with the invitation: offer from here, before accepting, so the
          // gateway has it when it answers the SIP side. Its answer comes as an sdp event.
          addLocalTracks(c);
          applyCodecPreferences(c.pc);
          await c.pc.setLocalDescription(await c.pc.createOffer());
          request("sdp", { callId: c.callId, description: descriptionOf(c.pc.localDescription) }).catch(reportFailure);
        }
      });
      if (c.ended) {
        return;
      }
      // The accept goes out before any candidate, so the gateway has the answer first.
      const reply = request("accept", fields);
      c.canTrickle = true;
      flushCandidates(c);
      await reply;
    } catch (e) {
      if (c.ended) {
        return;
      }
      reportFailure(e);
      if (c.state === "INVITATION_RECEIVED") {
        // Could not answer (no microphone, ...): decline so the caller is not left ringing.
        request("refuse", { callId: c.callId, sipCode: 603, response: "could not start media" }).catch(reportFailure);
      }
      endCall(c, "Could not answer: " + e.message + ".");
    }
    updateControls();
  }

  async function refuseCall(sipCode) {
    const c = call;
    if (!c || c.kind !== "remote" || c.state !== "INVITATION_RECEIVED" || c.accepting) {
      return;
    }
    hideError();
    stopRinging();
    try {
      await request("refuse", { callId: c.callId, sipCode: sipCode, response: sipCode === 486 ? "busy" : "declined" });
    } catch (e) {
      reportFailure(e);
      if (e.code === "UNKNOWN_CALL") {
        endCall(c, "Call ended.");
      }
    }
  }

  // ---- both directions: SDP, ICE, DTMF, hangup ---------------------------------------------

  function newCall(kind, peer) {
    return {
      kind: kind, // "local" (placed here) or "remote" (offered to this page)
      peer: peer,
      callId: "",
      state: "",
      offer: null, // a remote invitation's offer, until accepted
      pc: null,
      localStream: null,
      remoteAudio: null,
      remoteVideo: null,
      chain: Promise.resolve(), // serializes the peer connection's remote operations
      canTrickle: false, // the call id is known and the description went out first
      outCandidates: [],
      endOfCandidatesQueued: false,
      remoteDescriptionSet: false,
      inCandidates: [],
      established: false,
      startedAt: 0,
      ended: false,
      cancelRequested: false,
      accepting: false,
      muted: false,
    };
  }

  function callFor(callId, kind) {
    if (call && !call.ended && call.callId === callId && (!kind || call.kind === kind)) {
      return call;
    }
    return null;
  }

  function enqueue(c, fn) {
    const run = c.chain.then(function () {
      return c.ended ? undefined : fn();
    });
    c.chain = run.catch(function () {});
    return run;
  }

  function descriptionOf(d) {
    return { type: d.type, sdp: d.sdp };
  }

  async function startMedia(c, video) {
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      throw new ProtocolError("NO_MICROPHONE", window.isSecureContext === false
        ? "the browser allows microphone access only on HTTPS pages or localhost (see Help)"
        : "this browser cannot capture audio (no getUserMedia)");
    }
    const audio = { echoCancellation: true, noiseSuppression: true, autoGainControl: true };
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({ audio: audio, video: video });
    } catch (e) {
      if (!video) {
        throw mediaError(e);
      }
      logLine("camera unavailable (" + (e.name || e.message) + "): audio only", "err");
      try {
        stream = await navigator.mediaDevices.getUserMedia({ audio: audio, video: false });
      } catch (e2) {
        throw mediaError(e2);
      }
    }
    if (c.ended) {
      stopStream(stream);
      return;
    }
    c.localStream = stream;
    if (stream.getVideoTracks().length > 0) {
      ui.localVideo.srcObject = stream;
      ui.localVideo.hidden = false;
      ui.localVideoCaption.hidden = false;
    }
  }

  function mediaError(e) {
    const names = {
      NotAllowedError: "microphone access was denied: allow it in the browser's site settings",
      NotFoundError: "no microphone found",
      NotReadableError: "the microphone is in use by another application",
      SecurityError: "microphone access is blocked on this page (HTTPS needed)",
    };
    return new ProtocolError("NO_MICROPHONE", names[e.name] || (e.name + ": " + e.message));
  }

  function stopStream(stream) {
    if (stream) {
      stream.getTracks().forEach(function (t) {
        t.stop();
      });
    }
  }

  function createPeer(c) {
    // No ICE servers: the gateway announces a reachable address, and the page must work on a LAN
    // without Internet access.
    const pc = new RTCPeerConnection({ bundlePolicy: "max-bundle", rtcpMuxPolicy: "require" });
    c.pc = pc;
    pc.onicecandidate = function (ev) {
      queueLocalCandidate(c, ev.candidate);
    };
    pc.ontrack = function (ev) {
      onRemoteTrack(c, ev);
    };
    pc.oniceconnectionstatechange = function () {
      logLine("ICE " + pc.iceConnectionState);
      if (pc.iceConnectionState === "failed" && !c.ended) {
        reportFailure(new ProtocolError("ICE_FAILED", "no media path to the gateway (ICE failed)"));
      }
    };
    pc.onconnectionstatechange = function () {
      logLine("peer connection " + pc.connectionState);
    };
    return pc;
  }

  function addLocalTracks(c) {
    if (!c.localStream) {
      return;
    }
    c.localStream.getTracks().forEach(function (track) {
      c.pc.addTrack(track, c.localStream);
    });
  }

  // applyCodecPreferences leaves audio RED out unless asked for (the gateway declines it, so the
  // call never depends on it) and puts the preferred audio codec first. Browsers without
  // setCodecPreferences offer their defaults, which the gateway narrows in its answer.
  function applyCodecPreferences(pc) {
    const canPrefer = typeof RTCRtpTransceiver !== "undefined" && RTCRtpTransceiver.prototype &&
      typeof RTCRtpTransceiver.prototype.setCodecPreferences === "function" &&
      typeof RTCRtpReceiver !== "undefined" && typeof RTCRtpReceiver.getCapabilities === "function";
    if (!canPrefer) {
      logLine("this browser cannot set codec preferences: it offers its defaults");
      return;
    }
    const caps = RTCRtpReceiver.getCapabilities("audio");
    if (!caps || !caps.codecs) {
      return;
    }
    const preferred = ui.codec.value.toLowerCase();
    const keepRed = ui.offerRed.checked;
    let codecs = caps.codecs.filter(function (codec) {
      return keepRed || codec.mimeType.toLowerCase() !== "audio/red";
    });
    if (preferred) {
      const first = codecs.filter(function (codec) { return codec.mimeType.toLowerCase() === preferred; });
      const rest = codecs.filter(function (codec) { return codec.mimeType.toLowerCase() !== preferred; });
      codecs = first.concat(rest);
    }
    pc.getTransceivers().forEach(function (t) {
      const kind = t.receiver && t.receiver.track ? t.receiver.track.kind : "";
      if (kind !== "audio" || t.stopped) {
        return;
      }
      try {
        t.setCodecPreferences(codecs);
      } catch (e) {
        logLine("codec preferences not applied: " + e.message, "err");
      }
    });
  }

  function queueLocalCandidate(c, cand) {
    let init = null;
    if (cand && cand.candidate) {
      init = typeof cand.toJSON === "function" ? cand.toJSON() : {
        candidate: cand.candidate, sdpMid: cand.sdpMid, sdpMLineIndex: cand.sdpMLineIndex,
      };
    } else {
      // End-of-candidates: browsers may signal it twice (an empty candidate, then null).
      if (c.endOfCandidatesQueued) {
        return;
      }
      c.endOfCandidatesQueued = true;
    }
    c.outCandidates.push(init);
    flushCandidates(c);
  }

  function flushCandidates(c) {
    if (!c.canTrickle || c.ended) {
      return;
    }
    while (c.outCandidates.length > 0) {
      const cand = c.outCandidates.shift();
      request("candidate", { callId: c.callId, candidate: cand }).catch(function (e) {
        logLine("candidate not taken: " + e.code + " " + e.message, "err");
      });
    }
  }

  function onRemoteCandidate(msg) {
    const c = callFor(msg.callId);
    if (!c) {
      return;
    }
    const cand = msg.candidate && msg.candidate.candidate ? msg.candidate : null;
    enqueue(c, function () {
      return addRemoteCandidate(c, cand);
    }).catch(reportFailure);
  }

  async function addRemoteCandidate(c, cand) {
    if (!c.pc || !c.remoteDescriptionSet) {
      c.inCandidates.push(cand);
      return;
    }
    if (!cand) {
      // End-of-candidates is a hint: browsers that do not take it lose nothing.
      try {
        await c.pc.addIceCandidate();
      } catch (e) {
        try {
          await c.pc.addIceCandidate({ candidate: "" });
        } catch (e2) {
          logLine("end-of-candidates not taken by the browser");
        }
      }
      return;
    }
    const init = { candidate: cand.candidate };
    if (cand.sdpMid !== undefined && cand.sdpMid !== null) {
      init.sdpMid = cand.sdpMid;
    }
    if (typeof cand.sdpMLineIndex === "number") {
      init.sdpMLineIndex = cand.sdpMLineIndex;
    }
    if (init.sdpMid === undefined && init.sdpMLineIndex === undefined) {
      init.sdpMLineIndex = 0; // BUNDLE: the first m-line carries the transport
    }
    if (cand.usernameFragment) {
      init.usernameFragment = cand.usernameFragment;
    }
    try {
      await c.pc.addIceCandidate(init);
    } catch (e) {
      logLine("gateway candidate not taken: " + e.message, "err");
    }
  }

  async function flushRemoteCandidates(c) {
    const list = c.inCandidates;
    c.inCandidates = [];
    for (const cand of list) {
      await addRemoteCandidate(c, cand);
    }
  }

  function onRemoteSDP(msg) {
    const c = callFor(msg.callId);
    const d = msg.description;
    if (!c || !d) {
      return;
    }
    if (!c.pc) {
      // A remote invitation not yet accepted: keep the newest offer for the answer.
      if (d.type === "offer") {
        c.offer = d;
      }
      return;
    }
    enqueue(c, async function () {
      const answer = await applyRemoteDescription(c, d);
      if (answer && !c.ended) {
        await request("sdp", { callId: c.callId, description: answer });
      }
    }).catch(function (e) {
      if (!c.ended) {
        reportFailure(e);
      }
    });
  }

  // applyRemoteDescription takes the gateway's offer, answer, pranswer (early media) or
  // rollback; for an offer it returns the page's answer.
  async function applyRemoteDescription(c, d) {
    const pc = c.pc;
    if (d.type === "rollback") {
      await pc.setRemoteDescription({ type: "rollback" });
      return null;
    }
    if (d.type === "offer" && pc.signalingState === "have-local-offer") {
      await pc.setLocalDescription({ type: "rollback" }); // the gateway's offer wins
    }
    await pc.setRemoteDescription({ type: d.type, sdp: d.sdp });
    c.remoteDescriptionSet = true;
    await flushRemoteCandidates(c);
    if (d.type !== "offer") {
      return null;
    }
    await pc.setLocalDescription(await pc.createAnswer());
    return descriptionOf(pc.localDescription);
  }

  function onRemoteTrack(c, ev) {
    const track = ev.track;
    if (track.kind === "audio") {
      if (!c.remoteAudio) {
        c.remoteAudio = new MediaStream();
        ui.remoteAudio.srcObject = c.remoteAudio;
      }
      c.remoteAudio.addTrack(track);
      play(ui.remoteAudio);
    } else if (track.kind === "video") {
      if (!c.remoteVideo) {
        c.remoteVideo = new MediaStream();
        ui.remoteVideo.srcObject = c.remoteVideo;
      }
      c.remoteVideo.addTrack(track);
      ui.remoteVideo.hidden = false;
      ui.remoteVideoCaption.hidden = false;
      play(ui.remoteVideo);
    }
  }

  function play(el) {
    const p = el.play && el.play();
    if (p && typeof p.catch === "function") {
      p.catch(function (e) {
        logLine("the browser blocked playback (" + e.name + "): click anywhere on the page", "err");
      });
    }
  }

  function establish(c) {
    if (c.established) {
      return;
    }
    c.established = true;
    c.startedAt = Date.now();
    stopRinging();
    ui.incoming.hidden = true;
    document.title = "In call: " + c.peer + " - siprtc web phone";
    setCallState("In call with " + c.peer + ".");
    startTicker(c);
  }

  async function hangup() {
    const c = call;
    if (!c || !c.callId) {
      return;
    }
    hideError();
    try {
      await request("hangup", { callId: c.callId, reason: "user hung up" });
      endCall(c, "Call ended (you hung up).");
    } catch (e) {
      reportFailure(e);
      if (e.code === "UNKNOWN_CALL" || e.code === "NOT_CONNECTED") {
        endCall(c, "Call ended.");
      }
    }
  }

  function onRemoteHangup(msg) {
    const c = callFor(msg.callId);
    if (!c) {
      return;
    }
    const why = [];
    if (msg.reason) {
      why.push(msg.reason);
    }
    if (msg.sipCode) {
      why.push("SIP " + msg.sipCode);
    }
    recordState("HANGUP", "Hung up by the other side", why.length ? " (" + why.join(", ") + ")" : "");
    endCall(c, c.peer + " hung up" + (why.length ? " (" + why.join(", ") + ")" : "") + ".");
  }

  function endCall(c, text) {
    if (c.ended) {
      return;
    }
    c.ended = true;
    if (c.pc) {
      try {
        c.pc.close();
      } catch (e) {
        // already closed
      }
    }
    stopStream(c.localStream);
    stopRinging();
    stopTicker();
    ui.remoteAudio.srcObject = null;
    ui.remoteVideo.srcObject = null;
    ui.localVideo.srcObject = null;
    ui.remoteVideo.hidden = ui.remoteVideoCaption.hidden = true;
    ui.localVideo.hidden = ui.localVideoCaption.hidden = true;
    ui.incoming.hidden = true;
    ui.muteButton.setAttribute("aria-pressed", "false");
    document.title = "siprtc web phone";
    if (call === c) {
      call = null;
    }
    setCallState(text);
    if (sessionUser) {
      setStatus("Logged in as " + sessionUser + ".", true);
    }
    updateControls();
  }

  // ---- DTMF -----------------------------------------------------------------------------------

  function dtmfSender(c) {
    if (!c.pc) {
      return null;
    }
    const senders = c.pc.getSenders();
    for (const s of senders) {
      if (s.track && s.track.kind === "audio" && s.dtmf && s.dtmf.canInsertDTMF !== false) {
        return s.dtmf;
      }
    }
    return null;
  }

  // sendDigit sends one digit either in the audio (RFC 4733 telephone-event, through the
  // browser's RTCDTMFSender) or as a dtmf message, never both: the gateway would pass on two.
  function sendDigit(digit) {
    const c = call;
    if (!c || !c.callId || !c.pc || c.ended) {
      return;
    }
    let duration = parseInt(ui.dtmfDuration.value, 10);
    if (!(duration >= 40)) {
      duration = 100;
    }
    duration = Math.min(duration, 6000);
    const mode = ui.dtmfMode.value;
    const inband = mode === "message" ? null : dtmfSender(c);
    if (inband) {
      try {
        // insertDTMF replaces the tones not yet played: append to them instead.
        inband.insertDTMF(inband.toneBuffer + digit, duration, 70);
        appendDigit(ui.dtmfSent, digit);
        return;
      } catch (e) {
        if (mode === "inband") {
          reportFailure(new ProtocolError("DTMF_FAILED", e.message));
          return;
        }
      }
    } else if (mode === "inband") {
      reportFailure(new ProtocolError("DTMF_UNAVAILABLE",
        "this call cannot carry DTMF in the audio (no telephone-event or no RTCDTMFSender): choose the dtmf message"));
      return;
    }
    request("dtmf", { callId: c.callId, digit: digit, duration: duration }).then(function () {
      appendDigit(ui.dtmfSent, digit);
    }, reportFailure);
  }

  function onRemoteDTMF(msg) {
    if (!callFor(msg.callId)) {
      return;
    }
    appendDigit(ui.dtmfReceived, msg.digit);
  }

  function appendDigit(el, digit) {
    el.textContent = (el.textContent + digit).slice(-40);
  }

  function buildKeypad() {
    KEYPAD.forEach(function (digit) {
      const b = document.createElement("button");
      b.type = "button";
      b.textContent = digit;
      b.setAttribute("aria-label", "DTMF " + digit);
      b.dataset.digit = digit;
      b.disabled = true;
      b.addEventListener("click", function () {
        sendDigit(digit);
      });
      ui.keypad.appendChild(b);
    });
  }

  function onKeyDown(ev) {
    const target = ev.target;
    const tag = target && target.tagName ? target.tagName.toLowerCase() : "";
    if (tag === "input" || tag === "select" || tag === "textarea" || ev.ctrlKey || ev.metaKey || ev.altKey) {
      return;
    }
    const key = (ev.key || "").toUpperCase();
    if (key.length === 1 && KEYPAD.indexOf(key) >= 0 && call && call.established) {
      sendDigit(key);
    }
  }

  // ---- mute, timer, stats ------------------------------------------------------------------

  function toggleMute() {
    const c = call;
    if (!c || !c.localStream) {
      return;
    }
    c.muted = !c.muted;
    c.localStream.getAudioTracks().forEach(function (t) {
      t.enabled = !c.muted;
    });
    ui.muteButton.setAttribute("aria-pressed", String(c.muted));
    setStatus(c.muted ? "Microphone muted." : "Microphone on.", true);
  }

  function startTicker(c) {
    stopTicker();
    let n = 0;
    const tick = function () {
      const s = Math.floor((Date.now() - c.startedAt) / 1000);
      ui.callTimer.textContent = Math.floor(s / 60) + ":" + String(s % 60).padStart(2, "0");
      if (n++ % 2 === 0) {
        updateStats(c);
      }
    };
    tick();
    ticker = setInterval(tick, 1000);
  }

  function stopTicker() {
    if (ticker) {
      clearInterval(ticker);
      ticker = null;
    }
  }

  async function updateStats(c) {
    if (!c.pc || typeof c.pc.getStats !== "function") {
      return;
    }
    let report;
    try {
      report = await c.pc.getStats();
    } catch (e) {
      return;
    }
    const byId = new Map();
    let inbound = null;
    let remoteInbound = null;
    let pair = null;
    let selectedPairId = "";
    report.forEach(function (s) {
      byId.set(s.id, s);
      const kind = s.kind || s.mediaType;
      if (s.type === "inbound-rtp" && kind === "audio" && !s.isRemote) {
        inbound = s;
      } else if (s.type === "remote-inbound-rtp" && kind === "audio") {
        remoteInbound = s;
      } else if (s.type === "transport" && s.selectedCandidatePairId) {
        selectedPairId = s.selectedCandidatePairId;
      } else if (s.type === "candidate-pair" && (s.selected || (s.nominated && s.state === "succeeded"))) {
        pair = pair || s;
      }
    });
    if (selectedPairId && byId.has(selectedPairId)) {
      pair = byId.get(selectedPairId);
    }
    const parts = [];
    if (inbound) {
      const codec = inbound.codecId ? byId.get(inbound.codecId) : null;
      if (codec && codec.mimeType) {
        parts.push("audio " + codec.mimeType.replace(/^audio\//i, ""));
      }
      const got = inbound.packetsReceived || 0;
      const lost = inbound.packetsLost || 0;
      const pct = got + lost > 0 ? (100 * lost / (got + lost)).toFixed(1) : "0.0";
      parts.push("received " + got + " packets, lost " + lost + " (" + pct + " %)");
      if (typeof inbound.jitter === "number") {
        parts.push("jitter " + Math.round(inbound.jitter * 1000) + " ms");
      }
    }
    let rtt = null;
    if (remoteInbound && typeof remoteInbound.roundTripTime === "number") {
      rtt = remoteInbound.roundTripTime;
    } else if (pair && typeof pair.currentRoundTripTime === "number") {
      rtt = pair.currentRoundTripTime;
    }
    if (rtt !== null) {
      parts.push("RTT " + Math.round(rtt * 1000) + " ms");
    }
    if (remoteInbound && typeof remoteInbound.packetsLost === "number") {
      parts.push("the gateway lost " + remoteInbound.packetsLost + " of ours");
    }
    if (parts.length > 0) {
      ui.stats.textContent = parts.join(" · ");
    }
  }

  // ---- ringing --------------------------------------------------------------------------------

  function startRinging() {
    const AC = window.AudioContext || window.webkitAudioContext;
    if (!AC || ringer.timer) {
      return;
    }
    try {
      ringer.ctx = ringer.ctx || new AC();
      if (ringer.ctx.state === "suspended" && ringer.ctx.resume) {
        ringer.ctx.resume().catch(function () {});
      }
    } catch (e) {
      return;
    }
    const burst = function () {
      const ctx = ringer.ctx;
      const gain = ctx.createGain();
      gain.gain.value = 0.08;
      gain.connect(ctx.destination);
      [440, 480].forEach(function (hz) {
        const osc = ctx.createOscillator();
        osc.frequency.value = hz;
        osc.connect(gain);
        osc.start(ctx.currentTime);
        osc.stop(ctx.currentTime + 1);
      });
    };
    burst();
    ringer.timer = setInterval(burst, 3000);
  }

  function stopRinging() {
    if (ringer.timer) {
      clearInterval(ringer.timer);
      ringer.timer = null;
    }
  }

  // ---- the page -------------------------------------------------------------------------------

  function setStatus(text, online) {
    ui.status.textContent = text;
    ui.status.classList.toggle("online", !!online);
  }

  function setCallState(text) {
    ui.callState.textContent = text;
  }

  function beginCallUI(c, text) {
    ui.stateLog.replaceChildren();
    ui.stats.textContent = "";
    ui.callTimer.textContent = "0:00";
    ui.dtmfSent.textContent = "";
    ui.dtmfReceived.textContent = "";
    ui.muteButton.setAttribute("aria-pressed", "false");
    setCallState(text + "…");
    updateControls();
  }

  function recordState(state, meaning, details) {
    const li = document.createElement("li");
    li.textContent = timestamp() + " " + state + (meaning ? " - " + meaning : "") + (details || "");
    ui.stateLog.appendChild(li);
  }

  function outcomeDetails(msg) {
    const parts = [];
    if (msg.sipCode) {
      parts.push("SIP " + msg.sipCode);
    }
    if (msg.code) {
      parts.push(msg.code);
    }
    if (msg.reason) {
      parts.push(msg.reason);
    }
    if (msg.response) {
      parts.push("response: " + msg.response);
    }
    return parts.length ? " (" + parts.join(", ") + ")" : "";
  }

  function failureText(msg) {
    let text = FAILURE_CODES[msg.code] || (msg.code ? msg.code : "failed");
    if (msg.sipCode) {
      text += ", SIP " + msg.sipCode;
    }
    if (msg.reason) {
      text += " " + msg.reason;
    }
    return text;
  }

  function reportFailure(e) {
    const code = e && e.code ? e.code : "PAGE_ERROR";
    const message = e && e.message ? e.message : String(e);
    ui.errorCode.textContent = code;
    ui.errorMessage.textContent = message;
    ui.error.hidden = false;
    logLine(code + ": " + message, "err");
  }

  function hideError() {
    ui.error.hidden = true;
  }

  function timestamp() {
    const d = new Date();
    return [d.getHours(), d.getMinutes(), d.getSeconds()].map(function (n) {
      return String(n).padStart(2, "0");
    }).join(":");
  }

  function logLine(text, cls) {
    const li = document.createElement("li");
    li.textContent = timestamp() + " " + text;
    if (cls) {
      li.className = cls;
    }
    ui.log.appendChild(li);
    while (ui.log.children.length > MAX_LOG_LINES) {
      ui.log.removeChild(ui.log.firstChild);
    }
    ui.log.scrollTop = ui.log.scrollHeight;
  }

  // summarize shortens a message for the log: no token, no SDP body.
  function summarize(msg) {
    const copy = Object.assign({}, msg);
    if (copy.token) {
      copy.token = "…";
    }
    if (copy.description && typeof copy.description === "object") {
      copy.description = copy.description.type + ", " + String(copy.description.sdp || "").length + " bytes of SDP";
    }
    if (copy.candidate && typeof copy.candidate === "object") {
      copy.candidate = copy.candidate.candidate;
    }
    return JSON.stringify(copy);
  }

  function remember(key, value) {
    try {
      localStorage.setItem("siprtc." + key, value);
    } catch (e) {
      // storage disabled: nothing to remember
    }
  }

  function recall(key) {
    try {
      return localStorage.getItem("siprtc." + key) || "";
    } catch (e) {
      return "";
    }
  }

  function updateControls() {
    const connected = sessionUser !== "";
    const c = call;
    ui.server.disabled = ui.user.disabled = ui.token.disabled = connected;
    ui.loginButton.disabled = connected;
    ui.logoutButton.disabled = !connected;
    ui.reconnectButton.disabled = ui.token.value.trim() === "";
    ui.callButton.disabled = !connected || !!c;
    ui.cancelButton.disabled = !(c && c.kind === "local" && !c.established && !c.ended);
    ui.hangupButton.disabled = !(c && c.callId && (c.established || c.state === "ACCEPT_SENT_TO_LOCAL"));
    ui.muteButton.disabled = !(c && c.localStream);
    const pendingAnswer = !!(c && c.kind === "remote" && c.state === "INVITATION_RECEIVED");
    ui.incoming.hidden = !pendingAnswer;
    ui.acceptButton.disabled = ui.refuseButton.disabled = ui.busyButton.disabled = !pendingAnswer || c.accepting;
    const keysOn = !!(c && c.callId && c.pc && !c.ended);
    Array.prototype.forEach.call(ui.keypad.children, function (b) {
      b.disabled = !keysOn;
    });
  }

  function init() {
    Array.prototype.forEach.call(document.querySelectorAll("[id]"), function (el) {
      ui[el.id] = el;
    });
    buildKeypad();
    ui.server.value = recall("server") || defaultServerURL();
    ui.user.value = recall("user");
    ui.callee.value = recall("callee");
    showTokenInfo();
    if (window.isSecureContext === false) {
      logLine("this page is not secure (plain HTTP): browsers allow the microphone only on HTTPS or localhost", "err");
    }
    ui.loginForm.addEventListener("submit", login);
    ui.logoutButton.addEventListener("click", logout);
    ui.reconnectButton.addEventListener("click", reconnect);
    ui.token.addEventListener("input", showTokenInfo);
    ui.callForm.addEventListener("submit", placeCall);
    ui.cancelButton.addEventListener("click", cancelCall);
    ui.hangupButton.addEventListener("click", hangup);
    ui.acceptButton.addEventListener("click", acceptCall);
    ui.refuseButton.addEventListener("click", function () {
      refuseCall(603);
    });
    ui.busyButton.addEventListener("click", function () {
      refuseCall(486);
    });
    ui.muteButton.addEventListener("click", toggleMute);
    ui.errorClose.addEventListener("click", hideError);
    ui.clearLog.addEventListener("click", function () {
      ui.log.replaceChildren();
    });
    document.addEventListener("keydown", onKeyDown);
    updateControls();
  }

  init();
})();
