#!/usr/bin/python3
"""Writes the malformed-request corpus: NNN-slug.req (the exact bytes to send) and expected.tsv
(file, status Petrel answers, the rule broken). Every request here must be refused before any
byte reaches an upstream. Run from anywhere: python3 tests/e2e/malformed/gen.py
The .req files are committed; this script is how they were made (edit it, then re-run)."""
import os

H = b"Host: example.com\r\n"
CASES = [
    # --- request line (RFC 9112 §3) ---
    ("extra-space-after-method", b"GET  / HTTP/1.1\r\n" + H + b"\r\n", 400, "RFC 9112 §3 request-line = method SP request-target SP HTTP-version"),
    ("extra-space-before-version", b"GET /  HTTP/1.1\r\n" + H + b"\r\n", 400, "RFC 9112 §3 single SP"),
    ("tab-after-method", b"GET\t/ HTTP/1.1\r\n" + H + b"\r\n", 400, "RFC 9112 §3 single SP (no HTAB)"),
    ("leading-space", b" GET / HTTP/1.1\r\n" + H + b"\r\n", 400, "RFC 9112 §3 request-line starts with method"),
    ("missing-version", b"GET / \r\n" + H + b"\r\n", 400, "RFC 9112 §3 HTTP-version required"),
    ("http09-style-line", b"GET /\r\n" + H + b"\r\n", 400, "RFC 9112 §3 HTTP/0.9 simple request not accepted"),
    ("lowercase-http", b"GET / http/1.1\r\n" + H + b"\r\n", 400, "RFC 9112 §2.3 HTTP-name is case-sensitive"),
    ("version-2-0", b"GET / HTTP/2.0\r\n" + H + b"\r\n", 505, "RFC 9110 §15.6.6 only HTTP/1.0 and 1.1 over HTTP/1 syntax"),
    ("version-1-2", b"GET / HTTP/1.2\r\n" + H + b"\r\n", 505, "RFC 9110 §15.6.6 unsupported minor version"),
    ("version-0-9", b"GET / HTTP/0.9\r\n" + H + b"\r\n", 505, "RFC 9110 §15.6.6 unsupported version"),
    ("version-garbage", b"GET / HTTP/1.x\r\n" + H + b"\r\n", 400, "RFC 9112 §2.3 HTTP-version = HTTP-name / DIGIT . DIGIT"),
    ("version-trailing-space", b"GET / HTTP/1.1 \r\n" + H + b"\r\n", 400, "RFC 9112 §3 nothing after HTTP-version"),
    ("version-two-digit-minor", b"GET / HTTP/1.10\r\n" + H + b"\r\n", 400, "RFC 9112 §2.3 single-digit minor"),
    ("unknown-method", b"FOO / HTTP/1.1\r\n" + H + b"\r\n", 501, "RFC 9110 §9.1 unrecognised method: 501"),
    ("lowercase-method", b"get / HTTP/1.1\r\n" + H + b"\r\n", 501, "RFC 9110 §9.1 methods are case-sensitive: unknown method"),
    ("rtsp-method", b"DESCRIBE / HTTP/1.1\r\n" + H + b"\r\n", 501, "RFC 9110 §9.1 not an HTTP method"),
    ("connect", b"CONNECT example.com:443 HTTP/1.1\r\n" + H + b"\r\n", 501, "RFC 9110 §9.3.6 CONNECT not implemented by Petrel"),
    ("bare-cr-request-line", b"GET / HTTP/1.1\r" + H + b"\r\n", 400, "RFC 9112 §2.2 bare CR"),
    ("bare-lf-request-line", b"GET / HTTP/1.1\n" + H + b"\r\n", 400, "RFC 9112 §2.2 CRLF line endings (strict)"),
    ("nul-in-method", b"G\x00ET / HTTP/1.1\r\n" + H + b"\r\n", 400, "RFC 9110 §5.6.2 method is a token"),
    ("too-long-request-line", b"GET /" + b"a" * 8200 + b" HTTP/1.1\r\n" + H + b"\r\n", 414, "RFC 9112 §3 / RFC 9110 §15.5.15 request-target too long"),
    ("h2-preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 400, "RFC 9113 §3.4 HTTP/2 preface on an HTTP/1 port (asterisk-form not OPTIONS)"),
    # --- request-target (RFC 9112 §3.2) ---
    ("target-no-slash", b"GET x/y HTTP/1.1\r\n" + H + b"\r\n", 400, "RFC 9112 §3.2 origin-form starts with /"),
    ("target-asterisk-get", b"GET * HTTP/1.1\r\n" + H + b"\r\n", 400, "RFC 9112 §3.2.4 asterisk-form only for OPTIONS"),
    ("absolute-form-ftp", b"GET ftp://example.com/ HTTP/1.1\r\n" + H + b"\r\n", 400, "RFC 9112 §3.2.2 absolute-form: http(s) URI only"),
    ("absolute-form-userinfo", b"GET http://user@example.com/ HTTP/1.1\r\n" + H + b"\r\n", 400, "RFC 9110 §4.2.4 userinfo forbidden in http URI"),
    ("absolute-form-bad-port", b"GET http://example.com:99999/ HTTP/1.1\r\n" + H + b"\r\n", 400, "RFC 9110 §4.2.1 port range"),
    ("absolute-form-empty-host", b"GET http:///x HTTP/1.1\r\n" + H + b"\r\n", 400, "RFC 9110 §4.2.1 http URI needs a host"),
    ("target-fragment", b"GET /a#frag HTTP/1.1\r\n" + H + b"\r\n", 400, "RFC 9112 §3.2 no fragment in request-target"),
    ("target-del-char", b"GET /a\x7fb HTTP/1.1\r\n" + H + b"\r\n", 400, "RFC 3986 §2 invalid character in target"),
    ("target-non-ascii", b"GET /\xc3\xa9 HTTP/1.1\r\n" + H + b"\r\n", 400, "RFC 3986 §2 non-ASCII in target"),
    ("target-nul", b"GET /a\x00b HTTP/1.1\r\n" + H + b"\r\n", 400, "RFC 3986 §2 NUL in target"),
    # --- Host (RFC 9112 §3.2, RFC 9110 §7.2) ---
    ("missing-host-1-1", b"GET / HTTP/1.1\r\nAccept: */*\r\n\r\n", 400, "RFC 9112 §3.2 HTTP/1.1 request without Host"),
    ("absolute-form-missing-host", b"GET http://example.com/ HTTP/1.1\r\n\r\n", 400, "RFC 9112 §3.2 Host required even with absolute-form"),
    ("two-hosts-same", b"GET / HTTP/1.1\r\n" + H + H + b"\r\n", 400, "RFC 9112 §3.2 more than one Host"),
    ("two-hosts-different", b"GET / HTTP/1.1\r\n" + H + b"Host: evil.example\r\n\r\n", 400, "RFC 9112 §3.2 more than one Host"),
    ("host-empty-1-1", b"GET / HTTP/1.1\r\nHost:\r\n\r\n", 400, "RFC 9112 §3.2 / RFC 9110 §7.2 empty Host with an authority-less 1.1 target"),
    ("host-userinfo", b"GET / HTTP/1.1\r\nHost: user@example.com\r\n\r\n", 400, "RFC 9110 §7.2 Host = uri-host [: port] (no userinfo)"),
    ("host-space", b"GET / HTTP/1.1\r\nHost: exa mple.com\r\n\r\n", 400, "RFC 9110 §7.2 invalid Host"),
    ("host-bad-port", b"GET / HTTP/1.1\r\nHost: example.com:8o\r\n\r\n", 400, "RFC 9110 §4.2.1 port = *DIGIT"),
    ("host-port-overflow", b"GET / HTTP/1.1\r\nHost: example.com:70000\r\n\r\n", 400, "RFC 9110 §4.2.1 port range"),
    ("host-slash", b"GET / HTTP/1.1\r\nHost: example.com/evil\r\n\r\n", 400, "RFC 3986 §3.2.2 reg-name characters"),
    ("host-unclosed-ipv6", b"GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", 400, "RFC 3986 §3.2.2 IP-literal"),
    # --- field syntax (RFC 9112 §5, RFC 9110 §5) ---
    ("obs-fold", b"GET / HTTP/1.1\r\n" + H + b"X-A: a\r\n b\r\n\r\n", 400, "RFC 9112 §5.2 obs-fold rejected"),
    ("obs-fold-tab", b"GET / HTTP/1.1\r\n" + H + b"X-A: a\r\n\tb\r\n\r\n", 400, "RFC 9112 §5.2 obs-fold rejected"),
    ("space-before-first-field", b"GET / HTTP/1.1\r\n " + H + b"\r\n", 400, "RFC 9112 §2.2 whitespace between start-line and first field"),
    ("space-before-colon", b"GET / HTTP/1.1\r\n" + H + b"X-A : a\r\n\r\n", 400, "RFC 9112 §5.1 no whitespace between field name and colon"),
    ("empty-field-name", b"GET / HTTP/1.1\r\n" + H + b": a\r\n\r\n", 400, "RFC 9110 §5.1 field-name = token (non-empty)"),
    ("field-name-ctl", b"GET / HTTP/1.1\r\n" + H + b"X\x01A: a\r\n\r\n", 400, "RFC 9110 §5.1 field-name = token"),
    ("field-name-slash", b"GET / HTTP/1.1\r\n" + H + b"X/A: a\r\n\r\n", 400, "RFC 9110 §5.1 field-name = token"),
    ("field-name-non-ascii", b"GET / HTTP/1.1\r\n" + H + b"X\xc3\xa9: a\r\n\r\n", 400, "RFC 9110 §5.1 field-name = token"),
    ("no-colon", b"GET / HTTP/1.1\r\n" + H + b"X-A a\r\n\r\n", 400, "RFC 9112 §5 field-line = field-name : OWS field-value OWS"),
    ("nul-in-value", b"GET / HTTP/1.1\r\n" + H + b"X-A: a\x00b\r\n\r\n", 400, "RFC 9110 §5.5 NUL in field value"),
    ("ctl-in-value", b"GET / HTTP/1.1\r\n" + H + b"X-A: a\x01b\r\n\r\n", 400, "RFC 9110 §5.5 CTL in field value"),
    ("del-in-value", b"GET / HTTP/1.1\r\n" + H + b"X-A: a\x7fb\r\n\r\n", 400, "RFC 9110 §5.5 DEL in field value"),
    ("bare-cr-in-value", b"GET / HTTP/1.1\r\n" + H + b"X-A: a\rb\r\n\r\n", 400, "RFC 9112 §2.2 bare CR"),
    ("bare-lf-line-endings", b"GET / HTTP/1.1\r\nHost: example.com\nX-A: a\n\n", 400, "RFC 9112 §2.2 CRLF line endings (strict)"),
    ("bare-cr-end-of-head", b"GET / HTTP/1.1\r\n" + H + b"\r\r\n", 400, "RFC 9112 §2.2 bare CR"),
    ("too-many-headers", b"GET / HTTP/1.1\r\n" + H + b"".join(b"X-%d: v\r\n" % i for i in range(120)) + b"\r\n", 431, "RFC 6585 §5 more than max_headers (100) fields"),
    ("headers-too-large", b"GET / HTTP/1.1\r\n" + H + b"X-Big: " + b"a" * (62 * 1024) + b"\r\n\r\n", 431, "RFC 6585 §5 header section over max_header_bytes (60 KiB)"),
    # --- Content-Length (RFC 9110 §8.6, RFC 9112 §6.3) ---
    ("cl-te", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400, "RFC 9112 §6.1 Transfer-Encoding with Content-Length"),
    ("te-cl", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\n" + H + b"\r\n", 400, "RFC 9112 §6.1 Transfer-Encoding with Content-Length"),
    ("cl-duplicate-same", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 3\r\nContent-Length: 3\r\n\r\nabc", 400, "RFC 9112 §6.3 duplicate Content-Length"),
    ("cl-duplicate-different", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 3\r\nContent-Length: 30\r\n\r\nabc", 400, "RFC 9112 §6.3 conflicting Content-Length"),
    ("cl-plus-sign", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: +3\r\n\r\nabc", 400, "RFC 9110 §8.6 Content-Length = 1*DIGIT"),
    ("cl-minus-sign", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: -3\r\n\r\nabc", 400, "RFC 9110 §8.6 Content-Length = 1*DIGIT"),
    ("cl-inner-space", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 1 0\r\n\r\nabcdefghij", 400, "RFC 9110 §8.6 Content-Length = 1*DIGIT"),
    ("cl-hex", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 0x3\r\n\r\nabc", 400, "RFC 9110 §8.6 Content-Length = 1*DIGIT"),
    ("cl-list", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 3, 3\r\n\r\nabc", 400, "RFC 9110 §8.6 list Content-Length rejected"),
    ("cl-overflow", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 99999999999999999999999\r\n\r\nabc", 400, "RFC 9110 §8.6 Content-Length overflow"),
    ("cl-empty", b"POST / HTTP/1.1\r\n" + H + b"Content-Length:\r\n\r\nabc", 400, "RFC 9110 §8.6 Content-Length = 1*DIGIT"),
    ("cl-smuggled-second-request", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 0\r\nContent-Length: 44\r\n\r\nGET /admin HTTP/1.1\r\nHost: example.com\r\n\r\n", 400, "RFC 9112 §6.3 conflicting Content-Length (smuggling)"),
    # --- Transfer-Encoding (RFC 9112 §6, §7) ---
    ("te-gzip-chunked", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501, "RFC 9112 §6.1 unimplemented transfer coding"),
    ("te-chunked-not-last", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n", 400, "RFC 9112 §6.3 chunked not final in a request"),
    ("te-chunked-twice", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n", 400, "RFC 9112 §6.1 chunked applied more than once (not final)"),
    ("te-identity", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: identity\r\n\r\n0\r\n\r\n", 501, "RFC 9112 §6.1 unknown transfer coding"),
    ("te-unknown", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n", 501, "RFC 9112 §6.1 unknown transfer coding"),
    ("te-duplicate-headers", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400, "RFC 9112 §6.3 several Transfer-Encoding fields (chunked not final)"),
    ("te-gzip-then-chunked-headers", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400, "RFC 9112 §6.1 several Transfer-Encoding fields"),
    ("te-obs-fold", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n", 400, "RFC 9112 §5.2 obs-fold into Transfer-Encoding"),
    ("te-vertical-tab", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: \x0bchunked\r\n\r\n0\r\n\r\n", 400, "RFC 9110 §5.5 CTL in Transfer-Encoding"),
    ("te-http10", b"POST / HTTP/1.0\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400, "RFC 9112 §6.1 Transfer-Encoding in an HTTP/1.0 request"),
    ("te-space-before-colon", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n", 400, "RFC 9112 §5.1 whitespace before colon"),
    # --- chunked framing (RFC 9112 §7.1): these fail after the head, see expected on_head note ---
    # --- Expect (RFC 9110 §10.1.1) ---
    ("expect-unknown", b"POST / HTTP/1.1\r\n" + H + b"Expect: 200-ok\r\nContent-Length: 0\r\n\r\n", 417, "RFC 9110 §10.1.1 unsupported expectation"),
    ("expect-garbage", b"GET / HTTP/1.1\r\n" + H + b"Expect: 100-continue-please\r\n\r\n", 417, "RFC 9110 §10.1.1 unsupported expectation"),
]

# Chunked-body errors are found after the head was accepted: they are in this second list, with
# the same format, and the unit test only checks their status (on_head does run for them; the
# e2e side checks that the upstream never sees a complete request).
BODY_CASES = [
    ("chunk-size-overflow", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n1ffffffffffffffff\r\nx\r\n0\r\n\r\n", 400, "RFC 9112 §7.1 chunk-size overflow"),
    ("chunk-size-negative", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n-1\r\nx\r\n0\r\n\r\n", 400, "RFC 9112 §7.1 chunk-size = 1*HEXDIG"),
    ("chunk-size-0x", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n0x3\r\nabc\r\n0\r\n\r\n", 400, "RFC 9112 §7.1 chunk-size = 1*HEXDIG"),
    ("chunk-missing-crlf", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc0\r\n\r\n", 400, "RFC 9112 §7.1 chunk-data CRLF"),
    ("chunk-ext-bare-lf", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n3;a=b\nabc\r\n0\r\n\r\n", 400, "RFC 9112 §7.1.1 chunk-ext then CRLF (bare LF)"),
    ("chunk-size-bare-lf", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\n", 400, "RFC 9112 §7.1 chunk-size CRLF (bare LF)"),
    ("chunk-size-space", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n3 \r\nabc\r\n0\r\n\r\n", 400, "RFC 9112 §7.1 chunk-size = 1*HEXDIG"),
    ("trailer-obs-fold", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n0\r\nX-T: a\r\n b\r\n\r\n", 400, "RFC 9112 §5.2 obs-fold in trailer section"),
]


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    for f in os.listdir(here):
        if f.endswith(".req"):
            os.unlink(os.path.join(here, f))
    n = 0
    lines = []
    for group, cases in ((0, CASES), (1, BODY_CASES)):
        for slug, data, status, rule in cases:
            n += 1
            name = "%03d-%s.req" % (n, slug)
            with open(os.path.join(here, name), "wb") as fh:
                fh.write(data)
            lines.append("%s\t%d\t%s%s\n" % (name, status, "[body] " if group else "", rule))
    with open(os.path.join(here, "expected.tsv"), "w") as fh:
        fh.writelines(lines)
    print("%d files" % n)


if __name__ == "__main__":
    main()
