// Package fsconf loads a FreeSWITCH 1.10 XML configuration directory, the same files a
// FreeSWITCH container reads from /etc/freeswitch, and interprets what the embedded PBX needs
// as FreeSWITCH does:
//
//   - the preprocessor (X-PRE-PROCESS include and set, $${var}; Load documents the exact
//     rules and the few deliberate differences);
//   - the user directory (Directory), with FreeSWITCH's domain/group/user param merging;
//   - the ACL network lists (ACL), with switch_network_list semantics and the built-in
//     *.auto lists;
//   - the sofia profiles, the event socket, modules.conf and switch.conf settings;
//   - the XML dialplan (Dialplan.Route), with mod_dialplan_xml's hunting rules, and the
//     runtime ${var} expansion (Expand);
//   - Lint, the known traps of the SRProxy/FreeSWITCH deployment with file:line;
//   - GenerateDirectory, the directory users rendered from one template.
//
// Every element keeps the file (relative to the conf dir) and the line it comes from, and
// every error names them: "dialplan/default.xml:57: dialplan application \"voicemail\" is not
// implemented by the embedded PBX (...)". Errors wrap the package's Err* values.
package fsconf
