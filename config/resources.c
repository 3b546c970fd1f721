/* config/resources.c
 * Per-kind schema: one field table per object of the Istio / Petrel API, and the readers that
 * turn a checked document into the typed model of config/resources.h. The field names are
 * Istio's, exactly (https://istio.io/latest/docs/reference/config/networking/). A field Istio
 * has and Petrel does not implement is listed as PT_FIELD_UNSUPPORTED, so that it is reported
 * ("not supported by Petrel yet") instead of silently ignored; supporting it later means
 * flipping its status here and reading it below.
 *
 * Readers report every problem they find and keep going; they never stop at the first. */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../proxy/regex.h"
#include "resources.h"

#define S PT_FIELD_SUPPORTED
#define A PT_FIELD_ACCEPTED
#define U PT_FIELD_UNSUPPORTED
#define NF(t) (sizeof(t) / sizeof((t)[0]))
#define MAP(cx, n, path, t, out) pt__cfg_map((cx), (n), (path), (t), NF(t), (out))

/* ---- tables --------------------------------------------------------------------------- */

/* Sub-tables of fields Petrel does not enforce yet: pt__cfg_map checks their keys and shapes
 * (so a typo inside them is still an error), then the holding field gets one warning. The
 * values themselves are not range-checked. */
#define SUB(t) (t), NF(t)
static const pt_cfg_field_t sm_any_fields[] = {
    {"exact", A, PT_SHAPE_SCALAR, NULL, 0},
    {"prefix", A, PT_SHAPE_SCALAR, NULL, 0},
    {"regex", A, PT_SHAPE_SCALAR, NULL, 0},
};
static const pt_cfg_field_t percent_fields[] = {{"value", A, PT_SHAPE_SCALAR, NULL, 0}};
static const pt_cfg_field_t port_sel_fields[] = {{"number", A, PT_SHAPE_SCALAR, NULL, 0}};
static const pt_cfg_field_t dest_any_fields[] = {
    {"host", A, PT_SHAPE_SCALAR, NULL, 0},
    {"subset", A, PT_SHAPE_SCALAR, NULL, 0},
    {"port", A, PT_SHAPE_MAP, SUB(port_sel_fields)},
};
static const pt_cfg_field_t retries_fields[] = {
    {"attempts", A, PT_SHAPE_SCALAR, NULL, 0},
    {"perTryTimeout", A, PT_SHAPE_SCALAR, NULL, 0},
    {"retryOn", A, PT_SHAPE_SCALAR, NULL, 0},
    {"retryRemoteLocalities", A, PT_SHAPE_SCALAR, NULL, 0},
    {"retryIgnorePreviousHosts", A, PT_SHAPE_SCALAR, NULL, 0},
    {"backoff", A, PT_SHAPE_SCALAR, NULL, 0},
};
/* HTTPFaultInjection: read by read_fault(). */
static const pt_cfg_field_t fault_percent_fields[] = {{.name = "value", .status = S}};
enum { FD_PERCENTAGE, FD_PERCENT, FD_FIXED, FD_EXPONENTIAL, FD__N };
static const pt_cfg_field_t delay_fields[FD__N] = {
    [FD_PERCENTAGE] = {.name = "percentage", .status = S},
    [FD_PERCENT] = {.name = "percent", .status = S}, /* deprecated integer form */
    [FD_FIXED] = {.name = "fixedDelay", .status = S},
    [FD_EXPONENTIAL] = {"exponentialDelay", U, PT_SHAPE_SCALAR, NULL, 0},
};
enum { FA_PERCENTAGE, FA_HTTP, FA_GRPC, FA_HTTP2, FA__N };
static const pt_cfg_field_t abort_fields[FA__N] = {
    [FA_PERCENTAGE] = {.name = "percentage", .status = S},
    [FA_HTTP] = {.name = "httpStatus", .status = S},
    /* gRPC is not spoken by Petrel's HTTP/1 listeners yet. */
    [FA_GRPC] = {"grpcStatus", U, PT_SHAPE_SCALAR, NULL, 0},
    [FA_HTTP2] = {"http2Error", U, PT_SHAPE_SCALAR, NULL, 0},
};
enum { FLT_DELAY, FLT_ABORT, FLT__N };
static const pt_cfg_field_t fault_fields[FLT__N] = {
    [FLT_DELAY] = {.name = "delay", .status = S},
    [FLT_ABORT] = {.name = "abort", .status = S},
};
static const pt_cfg_field_t cors_fields[] = {
    {"allowOrigin", A, PT_SHAPE_SEQ, NULL, 0}, /* deprecated: plain strings */
    {"allowOrigins", A, PT_SHAPE_SEQ, SUB(sm_any_fields)},
    {"allowMethods", A, PT_SHAPE_SEQ, NULL, 0},
    {"allowHeaders", A, PT_SHAPE_SEQ, NULL, 0},
    {"exposeHeaders", A, PT_SHAPE_SEQ, NULL, 0},
    {"maxAge", A, PT_SHAPE_SCALAR, NULL, 0},
    {"allowCredentials", A, PT_SHAPE_SCALAR, NULL, 0},
    {"unmatchedPreflights", A, PT_SHAPE_SCALAR, NULL, 0},
};
static const pt_cfg_field_t mirror_policy_fields[] = {
    {"destination", A, PT_SHAPE_MAP, SUB(dest_any_fields)},
    {"percentage", A, PT_SHAPE_MAP, SUB(percent_fields)},
};
static const pt_cfg_field_t delegate_fields[] = {
    {"name", A, PT_SHAPE_SCALAR, NULL, 0},
    {"namespace", A, PT_SHAPE_SCALAR, NULL, 0},
};
static const pt_cfg_field_t route_dest_any_fields[] = {
    {"destination", A, PT_SHAPE_MAP, SUB(dest_any_fields)},
    {"weight", A, PT_SHAPE_SCALAR, NULL, 0},
};
static const pt_cfg_field_t tls_match_fields[] = {
    {"sniHosts", A, PT_SHAPE_SEQ, NULL, 0}, {"destinationSubnets", A, PT_SHAPE_SEQ, NULL, 0},
    {"port", A, PT_SHAPE_SCALAR, NULL, 0},  {"sourceLabels", A, PT_SHAPE_MAP, NULL, 0},
    {"gateways", A, PT_SHAPE_SEQ, NULL, 0}, {"sourceNamespace", A, PT_SHAPE_SCALAR, NULL, 0},
};
static const pt_cfg_field_t tls_route_fields[] = {
    {"match", A, PT_SHAPE_SEQ, SUB(tls_match_fields)},
    {"route", A, PT_SHAPE_SEQ, SUB(route_dest_any_fields)},
};
static const pt_cfg_field_t server_tls_fields[] = {
    {"httpsRedirect", A, PT_SHAPE_SCALAR, NULL, 0},
    {"mode", A, PT_SHAPE_SCALAR, NULL, 0},
    {"serverCertificate", A, PT_SHAPE_SCALAR, NULL, 0},
    {"privateKey", A, PT_SHAPE_SCALAR, NULL, 0},
    {"caCertificates", A, PT_SHAPE_SCALAR, NULL, 0},
    {"caCrl", A, PT_SHAPE_SCALAR, NULL, 0},
    {"credentialName", A, PT_SHAPE_SCALAR, NULL, 0},
    {"credentialNames", A, PT_SHAPE_SEQ, NULL, 0},
    {"tlsCertificates", A, PT_SHAPE_SEQ, NULL, 0},
    {"subjectAltNames", A, PT_SHAPE_SEQ, NULL, 0},
    {"verifyCertificateSpki", A, PT_SHAPE_SEQ, NULL, 0},
    {"verifyCertificateHash", A, PT_SHAPE_SEQ, NULL, 0},
    {"minProtocolVersion", A, PT_SHAPE_SCALAR, NULL, 0},
    {"maxProtocolVersion", A, PT_SHAPE_SCALAR, NULL, 0},
    {"cipherSuites", A, PT_SHAPE_SEQ, NULL, 0},
};
static const pt_cfg_field_t client_tls_fields[] = {
    {"mode", A, PT_SHAPE_SCALAR, NULL, 0},
    {"clientCertificate", A, PT_SHAPE_SCALAR, NULL, 0},
    {"privateKey", A, PT_SHAPE_SCALAR, NULL, 0},
    {"caCertificates", A, PT_SHAPE_SCALAR, NULL, 0},
    {"credentialName", A, PT_SHAPE_SCALAR, NULL, 0},
    {"subjectAltNames", A, PT_SHAPE_SEQ, NULL, 0},
    {"sni", A, PT_SHAPE_SCALAR, NULL, 0},
    {"insecureSkipVerify", A, PT_SHAPE_SCALAR, NULL, 0},
    {"caCrl", A, PT_SHAPE_SCALAR, NULL, 0},
};
static const pt_cfg_field_t keepalive_fields[] = {
    {"probes", A, PT_SHAPE_SCALAR, NULL, 0},
    {"time", A, PT_SHAPE_SCALAR, NULL, 0},
    {"interval", A, PT_SHAPE_SCALAR, NULL, 0},
};
static const pt_cfg_field_t pool_tcp_fields[] = {
    {"maxConnections", A, PT_SHAPE_SCALAR, NULL, 0},
    {"connectTimeout", A, PT_SHAPE_SCALAR, NULL, 0},
    {"tcpKeepalive", A, PT_SHAPE_MAP, SUB(keepalive_fields)},
    {"maxConnectionDuration", A, PT_SHAPE_SCALAR, NULL, 0},
    {"idleTimeout", A, PT_SHAPE_SCALAR, NULL, 0},
};
static const pt_cfg_field_t pool_http_fields[] = {
    {"http1MaxPendingRequests", A, PT_SHAPE_SCALAR, NULL, 0},
    {"http2MaxRequests", A, PT_SHAPE_SCALAR, NULL, 0},
    {"maxRequestsPerConnection", A, PT_SHAPE_SCALAR, NULL, 0},
    {"maxRetries", A, PT_SHAPE_SCALAR, NULL, 0},
    {"idleTimeout", A, PT_SHAPE_SCALAR, NULL, 0},
    {"h2UpgradePolicy", A, PT_SHAPE_SCALAR, NULL, 0},
    {"useClientProtocol", A, PT_SHAPE_SCALAR, NULL, 0},
    {"maxConcurrentStreams", A, PT_SHAPE_SCALAR, NULL, 0},
};
static const pt_cfg_field_t conn_pool_fields[] = {
    {"tcp", A, PT_SHAPE_MAP, SUB(pool_tcp_fields)},
    {"http", A, PT_SHAPE_MAP, SUB(pool_http_fields)},
};
static const pt_cfg_field_t outlier_fields[] = {
    {"splitExternalLocalOriginErrors", A, PT_SHAPE_SCALAR, NULL, 0},
    {"consecutiveLocalOriginFailures", A, PT_SHAPE_SCALAR, NULL, 0},
    {"consecutiveGatewayErrors", A, PT_SHAPE_SCALAR, NULL, 0},
    {"consecutive5xxErrors", A, PT_SHAPE_SCALAR, NULL, 0},
    {"consecutiveErrors", A, PT_SHAPE_SCALAR, NULL, 0}, /* deprecated */
    {"interval", A, PT_SHAPE_SCALAR, NULL, 0},
    {"baseEjectionTime", A, PT_SHAPE_SCALAR, NULL, 0},
    {"maxEjectionPercent", A, PT_SHAPE_SCALAR, NULL, 0},
    {"minHealthPercent", A, PT_SHAPE_SCALAR, NULL, 0},
};
static const pt_cfg_field_t tunnel_fields[] = {
    {"protocol", A, PT_SHAPE_SCALAR, NULL, 0},
    {"targetHost", A, PT_SHAPE_SCALAR, NULL, 0},
    {"targetPort", A, PT_SHAPE_SCALAR, NULL, 0},
};
static const pt_cfg_field_t proxy_protocol_fields[] = {{"version", A, PT_SHAPE_SCALAR, NULL, 0}};
static const pt_cfg_field_t locality_lb_fields[] = {
    {"distribute", A, PT_SHAPE_SEQ, NULL, 0},
    {"failover", A, PT_SHAPE_SEQ, NULL, 0},
    {"failoverPriority", A, PT_SHAPE_SEQ, NULL, 0},
    {"enabled", A, PT_SHAPE_SCALAR, NULL, 0},
};
static const pt_cfg_field_t warmup_fields[] = {
    {"duration", A, PT_SHAPE_SCALAR, NULL, 0},
    {"minimumPercent", A, PT_SHAPE_SCALAR, NULL, 0},
    {"aggression", A, PT_SHAPE_SCALAR, NULL, 0},
};
/* Istio's WorkloadSelector ({labels}: Sidecar, ServiceEntry, DestinationRule, EnvoyFilter)
 * and type.WorkloadSelector ({matchLabels}: security, telemetry, extension kinds). */
static const pt_cfg_field_t selector_fields[] = {{"labels", A, PT_SHAPE_MAP, NULL, 0}};
static const pt_cfg_field_t match_selector_fields[] = {{"matchLabels", A, PT_SHAPE_MAP, NULL, 0}};

enum { DOC_API, DOC_KIND, DOC_META, DOC_SPEC, DOC__N };
static const pt_cfg_field_t doc_fields[DOC__N] = {
    [DOC_API] = {.name = "apiVersion", .status = S},
    [DOC_KIND] = {.name = "kind", .status = S},
    [DOC_META] = {.name = "metadata", .status = S},
    [DOC_SPEC] = {.name = "spec", .status = S},
};

enum { META_NAME, META_NS, META_LABELS, META_ANNOTATIONS, META__N };
static const pt_cfg_field_t meta_fields[META__N] = {
    [META_NAME] = {.name = "name", .status = S},
    [META_NS] = {.name = "namespace", .status = S},
    [META_LABELS] = {.name = "labels", .status = A},
    [META_ANNOTATIONS] = {.name = "annotations", .status = A},
};

/* Petrel's own kind (petrel.io/v1alpha1 Proxy). */
enum {
    PX_BIND,
    PX_ADMIN,
    PX_CONC,
    PX_MAXCONN,
    PX_MAXLINE,
    PX_MAXHDRBYTES,
    PX_MAXHDRS,
    PX_HDR_TO,
    PX_IDLE_TO,
    PX_UP_IDLE_TO,
    PX_CONNECT_TO,
    PX_DRAIN_TO,
    PX_ACCESS_LOG,
    PX_WORKLOAD,
    PX_PROM_PORT,
    PX_HEALTH_PORT,
    PX_LOG_FORMAT,
    PX__N
};
static const pt_cfg_field_t proxy_fields[PX__N] = {
    [PX_BIND] = {.name = "bindAddress", .status = S},
    [PX_ADMIN] = {.name = "adminPort", .status = S},
    [PX_CONC] = {.name = "concurrency", .status = S},
    [PX_MAXCONN] = {.name = "maxConnections", .status = S},
    [PX_MAXLINE] = {.name = "maxRequestLineBytes", .status = S},
    [PX_MAXHDRBYTES] = {.name = "maxHeaderBytes", .status = S},
    [PX_MAXHDRS] = {.name = "maxHeaders", .status = S},
    [PX_HDR_TO] = {.name = "headerTimeout", .status = S},
    [PX_IDLE_TO] = {.name = "idleTimeout", .status = S},
    [PX_UP_IDLE_TO] = {.name = "upstreamIdleTimeout", .status = S},
    [PX_CONNECT_TO] = {.name = "connectTimeout", .status = S},
    [PX_DRAIN_TO] = {.name = "drainTimeout", .status = S},
    [PX_ACCESS_LOG] = {.name = "accessLog", .status = S},
    [PX_WORKLOAD] = {.name = "workload", .status = S},
    [PX_PROM_PORT] = {.name = "prometheusPort", .status = S},
    [PX_HEALTH_PORT] = {.name = "healthPort", .status = S},
    [PX_LOG_FORMAT] = {.name = "accessLogFormat", .status = S},
};
/* Proxy spec.workload: who this proxy is, for sourceLabels / sourceNamespace matches. */
enum { WL_NAME, WL_NS, WL_SA, WL_LABELS, WL__N };
static const pt_cfg_field_t workload_fields[WL__N] = {
    [WL_NAME] = {.name = "name", .status = S},
    [WL_NS] = {.name = "namespace", .status = S},
    [WL_SA] = {.name = "serviceAccount", .status = S},
    [WL_LABELS] = {.name = "labels", .status = S},
};

/* Gateway */
enum { GW_SERVERS, GW_SELECTOR, GW__N };
static const pt_cfg_field_t gateway_fields[GW__N] = {
    [GW_SERVERS] = {.name = "servers", .status = S},
    /* Petrel is the gateway: every Gateway loaded applies, whatever it selects. */
    [GW_SELECTOR] = {.name = "selector", .status = A},
};
enum { SRV_PORT, SRV_HOSTS, SRV_NAME, SRV_BIND, SRV_TLS, SRV_DEFAULT_ENDPOINT, SRV__N };
static const pt_cfg_field_t server_fields[SRV__N] = {
    [SRV_PORT] = {.name = "port", .status = S},
    [SRV_HOSTS] = {.name = "hosts", .status = S},
    [SRV_NAME] = {.name = "name", .status = S},
    [SRV_BIND] = {"bind", U, PT_SHAPE_SCALAR, NULL, 0},
    [SRV_TLS] = {"tls", U, PT_SHAPE_MAP, SUB(server_tls_fields)},
    [SRV_DEFAULT_ENDPOINT] = {"defaultEndpoint", U, PT_SHAPE_SCALAR, NULL, 0},
};
enum { PORT_NUMBER, PORT_PROTOCOL, PORT_NAME, PORT_TARGET, PORT__N };
static const pt_cfg_field_t gw_port_fields[PORT__N] = {
    [PORT_NUMBER] = {.name = "number", .status = S},
    [PORT_PROTOCOL] = {.name = "protocol", .status = S},
    [PORT_NAME] = {.name = "name", .status = S},
    [PORT_TARGET] = {"targetPort", U, PT_SHAPE_SCALAR, NULL, 0},
};

/* VirtualService */
enum { VS_HOSTS, VS_GATEWAYS, VS_HTTP, VS_TCP, VS_TLS, VS_EXPORT_TO, VS__N };
static const pt_cfg_field_t vs_fields[VS__N] = {
    [VS_HOSTS] = {.name = "hosts", .status = S},
    [VS_GATEWAYS] = {.name = "gateways", .status = S},
    [VS_HTTP] = {.name = "http", .status = S},
    [VS_TCP] = {.name = "tcp", .status = S},
    [VS_TLS] = {"tls", U, PT_SHAPE_SEQ, SUB(tls_route_fields)},
    [VS_EXPORT_TO] = {"exportTo", A, PT_SHAPE_SEQ, NULL, 0},
};
enum {
    HR_NAME,
    HR_MATCH,
    HR_ROUTE,
    HR_DIRECT,
    HR_TIMEOUT,
    HR_REDIRECT,
    HR_DELEGATE,
    HR_REWRITE,
    HR_RETRIES,
    HR_FAULT,
    HR_MIRROR,
    HR_MIRRORS,
    HR_MIRROR_PERCENT,
    HR_MIRROR_PERCENTAGE,
    HR_CORS,
    HR_HEADERS,
    HR_WEBSOCKET_UPGRADE,
    HR__N
};
static const pt_cfg_field_t http_route_fields[HR__N] = {
    [HR_NAME] = {.name = "name", .status = S},
    [HR_MATCH] = {.name = "match", .status = S},
    [HR_ROUTE] = {.name = "route", .status = S},
    [HR_DIRECT] = {.name = "directResponse", .status = S},
    [HR_TIMEOUT] = {.name = "timeout", .status = S},
    [HR_REDIRECT] = {.name = "redirect", .status = S},
    [HR_DELEGATE] = {"delegate", U, PT_SHAPE_MAP, SUB(delegate_fields)},
    [HR_REWRITE] = {.name = "rewrite", .status = S},
    [HR_RETRIES] = {"retries", U, PT_SHAPE_MAP, SUB(retries_fields)},
    [HR_FAULT] = {.name = "fault", .status = S},
    [HR_MIRROR] = {"mirror", U, PT_SHAPE_MAP, SUB(dest_any_fields)},
    [HR_MIRRORS] = {"mirrors", U, PT_SHAPE_SEQ, SUB(mirror_policy_fields)},
    [HR_MIRROR_PERCENT] = {"mirrorPercent", U, PT_SHAPE_SCALAR, NULL, 0},
    [HR_MIRROR_PERCENTAGE] = {"mirrorPercentage", U, PT_SHAPE_MAP, SUB(percent_fields)},
    [HR_CORS] = {"corsPolicy", U, PT_SHAPE_MAP, SUB(cors_fields)},
    [HR_HEADERS] = {.name = "headers", .status = S},
    /* Istio's legacy flag (still in its CRD): HTTP/1.1 upgrades pass through Petrel anyway. */
    [HR_WEBSOCKET_UPGRADE] = {"websocketUpgrade", A, PT_SHAPE_SCALAR, NULL, 0},
};
/* Headers, HeaderOperations */
enum { HDR_REQUEST, HDR_RESPONSE, HDR__N };
static const pt_cfg_field_t headers_fields[HDR__N] = {
    [HDR_REQUEST] = {.name = "request", .status = S},
    [HDR_RESPONSE] = {.name = "response", .status = S},
};
enum { HOP_SET, HOP_ADD, HOP_REMOVE, HOP__N };
static const pt_cfg_field_t header_ops_fields[HOP__N] = {
    [HOP_SET] = {.name = "set", .status = S},
    [HOP_ADD] = {.name = "add", .status = S},
    [HOP_REMOVE] = {.name = "remove", .status = S},
};
/* HTTPRewrite, RegexRewrite, HTTPRedirect */
enum { RW_URI, RW_AUTHORITY, RW_URI_REGEX, RW__N };
static const pt_cfg_field_t rewrite_fields[RW__N] = {
    [RW_URI] = {.name = "uri", .status = S},
    [RW_AUTHORITY] = {.name = "authority", .status = S},
    [RW_URI_REGEX] = {.name = "uriRegexRewrite", .status = S},
};
enum { RR_MATCH, RR_REWRITE, RR__N };
static const pt_cfg_field_t regex_rewrite_fields[RR__N] = {
    [RR_MATCH] = {.name = "match", .status = S},
    [RR_REWRITE] = {.name = "rewrite", .status = S},
};
enum { RD_URI, RD_AUTHORITY, RD_PORT, RD_DERIVE_PORT, RD_SCHEME, RD_CODE, RDR__N };
static const pt_cfg_field_t redirect_fields[RDR__N] = {
    [RD_URI] = {.name = "uri", .status = S},
    [RD_AUTHORITY] = {.name = "authority", .status = S},
    [RD_PORT] = {.name = "port", .status = S},
    [RD_DERIVE_PORT] = {.name = "derivePort", .status = S},
    [RD_SCHEME] = {.name = "scheme", .status = S},
    [RD_CODE] = {.name = "redirectCode", .status = S},
};
enum {
    HM_NAME,
    HM_URI,
    HM_METHOD,
    HM_HEADERS,
    HM_SCHEME,
    HM_AUTHORITY,
    HM_PORT,
    HM_SOURCE_LABELS,
    HM_GATEWAYS,
    HM_QUERY_PARAMS,
    HM_IGNORE_URI_CASE,
    HM_WITHOUT_HEADERS,
    HM_SOURCE_NAMESPACE,
    HM_STAT_PREFIX,
    HM__N
};
static const pt_cfg_field_t http_match_fields[HM__N] = {
    [HM_NAME] = {.name = "name", .status = S},
    [HM_URI] = {.name = "uri", .status = S},
    [HM_METHOD] = {.name = "method", .status = S},
    [HM_HEADERS] = {.name = "headers", .status = S},
    [HM_SCHEME] = {.name = "scheme", .status = S},
    [HM_AUTHORITY] = {.name = "authority", .status = S},
    [HM_PORT] = {.name = "port", .status = S},
    [HM_SOURCE_LABELS] = {.name = "sourceLabels", .status = S},
    [HM_GATEWAYS] = {"gateways", U, PT_SHAPE_SEQ, NULL, 0},
    [HM_QUERY_PARAMS] = {.name = "queryParams", .status = S},
    [HM_IGNORE_URI_CASE] = {.name = "ignoreUriCase", .status = S},
    [HM_WITHOUT_HEADERS] = {.name = "withoutHeaders", .status = S},
    [HM_SOURCE_NAMESPACE] = {.name = "sourceNamespace", .status = S},
    [HM_STAT_PREFIX] = {"statPrefix", U, PT_SHAPE_SCALAR, NULL, 0},
};
/* StringMatch (uri, scheme, method, authority, headers, queryParams: Istio refuses prefix
 * for queryParams, which read_http_match reports). */
enum { SM_EXACT, SM_PREFIX, SM_REGEX, SM__N };
static const pt_cfg_field_t string_match_fields[SM__N] = {
    [SM_EXACT] = {.name = "exact", .status = S},
    [SM_PREFIX] = {.name = "prefix", .status = S},
    [SM_REGEX] = {.name = "regex", .status = S},
};
enum { HD_DESTINATION, HD_WEIGHT, HD_HEADERS, HD__N };
static const pt_cfg_field_t http_dest_fields[HD__N] = {
    [HD_DESTINATION] = {.name = "destination", .status = S},
    [HD_WEIGHT] = {.name = "weight", .status = S},
    [HD_HEADERS] = {.name = "headers", .status = S},
};
enum { DST_HOST, DST_PORT, DST_SUBSET, DST__N };
static const pt_cfg_field_t destination_fields[DST__N] = {
    [DST_HOST] = {.name = "host", .status = S},
    [DST_PORT] = {.name = "port", .status = S},
    [DST_SUBSET] = {.name = "subset", .status = S},
};
enum { PS_NUMBER, PS__N };
static const pt_cfg_field_t port_selector_fields[PS__N] = {
    [PS_NUMBER] = {.name = "number", .status = S},
};
enum { DR_STATUS, DR_BODY, DR__N };
static const pt_cfg_field_t direct_response_fields[DR__N] = {
    [DR_STATUS] = {.name = "status", .status = S},
    [DR_BODY] = {.name = "body", .status = S},
};
enum { BODY_STRING, BODY_BYTES, BODY__N };
static const pt_cfg_field_t body_fields[BODY__N] = {
    [BODY_STRING] = {.name = "string", .status = S},
    [BODY_BYTES] = {"bytes", U, PT_SHAPE_SCALAR, NULL, 0},
};
enum { TR_MATCH, TR_ROUTE, TR__N };
static const pt_cfg_field_t tcp_route_fields[TR__N] = {
    [TR_MATCH] = {.name = "match", .status = S},
    [TR_ROUTE] = {.name = "route", .status = S},
};
enum { L4_PORT, L4_DEST_SUBNETS, L4_SOURCE_LABELS, L4_GATEWAYS, L4_SOURCE_NAMESPACE, L4__N };
static const pt_cfg_field_t l4_match_fields[L4__N] = {
    [L4_PORT] = {.name = "port", .status = S},
    [L4_DEST_SUBNETS] = {"destinationSubnets", U, PT_SHAPE_SEQ, NULL, 0},
    [L4_SOURCE_LABELS] = {"sourceLabels", U, PT_SHAPE_MAP, NULL, 0},
    [L4_GATEWAYS] = {"gateways", U, PT_SHAPE_SEQ, NULL, 0},
    [L4_SOURCE_NAMESPACE] = {"sourceNamespace", U, PT_SHAPE_SCALAR, NULL, 0},
};
enum { RD_DESTINATION, RD_WEIGHT, RD__N };
static const pt_cfg_field_t route_dest_fields[RD__N] = {
    [RD_DESTINATION] = {.name = "destination", .status = S},
    [RD_WEIGHT] = {.name = "weight", .status = S},
};

/* ServiceEntry */
enum {
    SE_HOSTS,
    SE_ADDRESSES,
    SE_PORTS,
    SE_LOCATION,
    SE_RESOLUTION,
    SE_ENDPOINTS,
    SE_EXPORT_TO,
    SE_WORKLOAD_SELECTOR,
    SE_SUBJECT_ALT_NAMES,
    SE__N
};
static const pt_cfg_field_t se_fields[SE__N] = {
    [SE_HOSTS] = {.name = "hosts", .status = S},
    [SE_ADDRESSES] = {.name = "addresses", .status = A},
    [SE_PORTS] = {.name = "ports", .status = S},
    [SE_LOCATION] = {.name = "location", .status = S},
    [SE_RESOLUTION] = {.name = "resolution", .status = S},
    [SE_ENDPOINTS] = {.name = "endpoints", .status = S},
    [SE_EXPORT_TO] = {.name = "exportTo", .status = A},
    [SE_WORKLOAD_SELECTOR] = {"workloadSelector", U, PT_SHAPE_MAP, SUB(selector_fields)},
    [SE_SUBJECT_ALT_NAMES] = {"subjectAltNames", U, PT_SHAPE_SEQ, NULL, 0},
};
enum { SP_NUMBER, SP_PROTOCOL, SP_NAME, SP_TARGET, SP__N };
static const pt_cfg_field_t se_port_fields[SP__N] = {
    [SP_NUMBER] = {.name = "number", .status = S},
    [SP_PROTOCOL] = {.name = "protocol", .status = S},
    [SP_NAME] = {.name = "name", .status = S},
    [SP_TARGET] = {.name = "targetPort", .status = S},
};
enum { WE_ADDRESS, WE_PORTS, WE_LABELS, WE_WEIGHT, WE_NETWORK, WE_LOCALITY, WE_SA, WE__N };
static const pt_cfg_field_t endpoint_fields[WE__N] = {
    [WE_ADDRESS] = {.name = "address", .status = S},
    [WE_PORTS] = {.name = "ports", .status = S},
    [WE_LABELS] = {.name = "labels", .status = S},
    [WE_WEIGHT] = {.name = "weight", .status = S},
    [WE_NETWORK] = {.name = "network", .status = A},
    [WE_LOCALITY] = {.name = "locality", .status = A},
    [WE_SA] = {"serviceAccount", U, PT_SHAPE_SCALAR, NULL, 0},
};

/* DestinationRule */
enum { DRF_HOST, DRF_TRAFFIC_POLICY, DRF_SUBSETS, DRF_EXPORT_TO, DRF_WORKLOAD_SELECTOR, DRF__N };
static const pt_cfg_field_t dr_fields[DRF__N] = {
    [DRF_HOST] = {.name = "host", .status = S},
    [DRF_TRAFFIC_POLICY] = {.name = "trafficPolicy", .status = S},
    [DRF_SUBSETS] = {.name = "subsets", .status = S},
    [DRF_EXPORT_TO] = {.name = "exportTo", .status = A},
    [DRF_WORKLOAD_SELECTOR] = {"workloadSelector", U, PT_SHAPE_MAP, SUB(match_selector_fields)},
};
enum {
    TP_LB,
    TP_CONN_POOL,
    TP_OUTLIER,
    TP_TLS,
    TP_PORT_LEVEL,
    TP_TUNNEL,
    TP_PROXY_PROTOCOL,
    TP__N
};
static const pt_cfg_field_t traffic_policy_fields[TP__N] = {
    [TP_LB] = {.name = "loadBalancer", .status = S},
    [TP_CONN_POOL] = {"connectionPool", U, PT_SHAPE_MAP, SUB(conn_pool_fields)},
    [TP_OUTLIER] = {"outlierDetection", U, PT_SHAPE_MAP, SUB(outlier_fields)},
    [TP_TLS] = {"tls", U, PT_SHAPE_MAP, SUB(client_tls_fields)},
    [TP_PORT_LEVEL] = {.name = "portLevelSettings", .status = S},
    [TP_TUNNEL] = {"tunnel", U, PT_SHAPE_MAP, SUB(tunnel_fields)},
    [TP_PROXY_PROTOCOL] = {"proxyProtocol", U, PT_SHAPE_MAP, SUB(proxy_protocol_fields)},
};
enum { PLS_PORT, PLS_LB, PLS_CONN_POOL, PLS_OUTLIER, PLS_TLS, PLS__N };
static const pt_cfg_field_t port_policy_fields[PLS__N] = {
    [PLS_PORT] = {.name = "port", .status = S},
    [PLS_LB] = {.name = "loadBalancer", .status = S},
    [PLS_CONN_POOL] = {"connectionPool", U, PT_SHAPE_MAP, SUB(conn_pool_fields)},
    [PLS_OUTLIER] = {"outlierDetection", U, PT_SHAPE_MAP, SUB(outlier_fields)},
    [PLS_TLS] = {"tls", U, PT_SHAPE_MAP, SUB(client_tls_fields)},
};
enum { SUB_NAME, SUB_LABELS, SUB_TRAFFIC_POLICY, SUB__N };
static const pt_cfg_field_t subset_fields[SUB__N] = {
    [SUB_NAME] = {.name = "name", .status = S},
    [SUB_LABELS] = {.name = "labels", .status = S},
    [SUB_TRAFFIC_POLICY] = {.name = "trafficPolicy", .status = S},
};
enum { LB_SIMPLE, LB_CONSISTENT_HASH, LB_LOCALITY, LB_WARMUP_SECS, LB_WARMUP, LB__N };
static const pt_cfg_field_t lb_fields[LB__N] = {
    [LB_SIMPLE] = {.name = "simple", .status = S},
    [LB_CONSISTENT_HASH] = {.name = "consistentHash", .status = S},
    [LB_LOCALITY] = {"localityLbSetting", U, PT_SHAPE_MAP, SUB(locality_lb_fields)},
    [LB_WARMUP_SECS] = {"warmupDurationSecs", U, PT_SHAPE_SCALAR, NULL, 0},
    [LB_WARMUP] = {"warmup", U, PT_SHAPE_MAP, SUB(warmup_fields)},
};
enum { CH_HEADER, CH_COOKIE, CH_SOURCE_IP, CH_QUERY, CH_RING, CH_MAGLEV, CH_MIN_RING, CH__N };
static const pt_cfg_field_t consistent_hash_fields[CH__N] = {
    [CH_HEADER] = {.name = "httpHeaderName", .status = S},
    [CH_COOKIE] = {.name = "httpCookie", .status = S},
    [CH_SOURCE_IP] = {.name = "useSourceIp", .status = S},
    [CH_QUERY] = {.name = "httpQueryParameterName", .status = S},
    [CH_RING] = {.name = "ringHash", .status = S},
    [CH_MAGLEV] = {.name = "maglev", .status = S},
    [CH_MIN_RING] = {.name = "minimumRingSize",
                     .status = S}, /* deprecated by Istio for ringHash; still read */
};
enum { CK_NAME, CK_PATH, CK_TTL, CK_ATTRIBUTES, CK__N };
static const pt_cfg_field_t cookie_fields[CK__N] = {
    [CK_NAME] = {.name = "name", .status = S},
    /* path and ttl only shape a cookie the proxy generates; Petrel does not generate one yet
     * (a request without the cookie gets a random endpoint), so ttl, which asks for it, gets
     * a warning. */
    [CK_PATH] = {.name = "path", .status = A},
    [CK_TTL] = {"ttl", U, PT_SHAPE_SCALAR, NULL, 0},
    [CK_ATTRIBUTES] = {"attributes", U, PT_SHAPE_SEQ, NULL, 0},
};
enum { RH_MIN, RH__N };
static const pt_cfg_field_t ring_hash_fields[RH__N] = {
    [RH_MIN] = {.name = "minimumRingSize", .status = S},
};
enum { MG_TABLE, MG__N };
static const pt_cfg_field_t maglev_fields[MG__N] = {
    [MG_TABLE] = {.name = "tableSize", .status = S},
};

/* ---- helpers -------------------------------------------------------------------------- */

#define PUSH(cx, arr, n, cap, item)                                                                \
    do {                                                                                           \
        (arr) = pt_arena_grow((cx)->tmp, (arr), (n), &(cap), sizeof(*(arr)));                      \
        (arr)[(n)++] = (item);                                                                     \
    } while (0)

static const char **read_labels(pt_cfg_cx_t *cx, const pt_cfg_node_t *n, const pt_cfg_path_t *path,
                                size_t *out_n);

static bool is_ip_literal(const char *s, struct sockaddr_storage *ss, socklen_t *len)
{
    struct sockaddr_storage tmp;
    memset(&tmp, 0, sizeof(tmp));
    struct sockaddr_in *in4 = (struct sockaddr_in *)&tmp;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&tmp;
    socklen_t l;
    if (inet_pton(AF_INET, s, &in4->sin_addr) == 1) {
        in4->sin_family = AF_INET;
        l = sizeof(*in4);
    } else if (inet_pton(AF_INET6, s, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        l = sizeof(*in6);
    } else {
        return false;
    }
    if (ss != NULL)
        *ss = tmp;
    if (len != NULL)
        *len = l;
    return true;
}

/* A list of hosts (Istio's hosts[]), lower-cased into the snapshot arena. Gateway server hosts
 * may carry a "namespace/" prefix, which only selects which VirtualServices may bind: Petrel
 * keeps the dnsName part. */
static const char **read_hosts(pt_cfg_cx_t *cx, const pt_cfg_node_t *n, const pt_cfg_path_t *path,
                               bool allow_ns_prefix, size_t *out_n)
{
    *out_n = 0;
    if (!pt__cfg_is_seq(cx, n, path))
        return NULL;
    if (n->n_items == 0) {
        pt__cfg_error(cx, n, path, "must not be empty");
        return NULL;
    }
    const char **hosts = pt_arena_calloc(cx->out, n->n_items * sizeof(*hosts));
    for (size_t i = 0; i < n->n_items; i++) {
        pt_cfg_path_t ip = PT_PATH_IDX(path, i);
        const char *s;
        if (!pt__cfg_nonempty_str(cx, n->items[i], &ip, &s))
            continue;
        const char *slash = strchr(s, '/');
        if (allow_ns_prefix && slash != NULL)
            s = slash + 1;
        const char *why = pt__cfg_host_problem(s);
        if (why != NULL) {
            pt__cfg_error(cx, n->items[i], &ip, "invalid host \"%s\": %s", n->items[i]->str, why);
            continue;
        }
        hosts[(*out_n)++] = pt__cfg_out_lower(cx, s);
    }
    return hosts;
}

/* ---- metadata and kinds --------------------------------------------------------------- */

static bool read_meta(pt_cfg_cx_t *cx, const pt_cfg_node_t *root, const pt_cfg_node_t *n,
                      pt_res_meta_t *m)
{
    pt_cfg_path_t path = PT_PATH_KEY(NULL, "metadata");
    const pt_cfg_node_t *f[META__N];
    m->ns = "default";
    if (n == NULL) {
        pt__cfg_error(cx, root, &path, "required");
        return false;
    }
    if (!MAP(cx, n, &path, meta_fields, f))
        return false;
    bool ok = true;
    pt_cfg_path_t np = PT_PATH_KEY(&path, "name");
    if (f[META_NAME] == NULL) {
        pt__cfg_error(cx, n, &np, "required");
        ok = false;
    } else if (!pt__cfg_nonempty_str(cx, f[META_NAME], &np, &m->name)) {
        ok = false;
    } else if (strchr(m->name, '/') != NULL) {
        pt__cfg_error(cx, f[META_NAME], &np, "must not contain \"/\"");
        ok = false;
    }
    m->name_node = f[META_NAME];
    if (f[META_NS] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(&path, "namespace");
        const char *ns;
        if (pt__cfg_nonempty_str(cx, f[META_NS], &p, &ns)) {
            if (strchr(ns, '/') != NULL)
                pt__cfg_error(cx, f[META_NS], &p, "must not contain \"/\"");
            else
                m->ns = ns;
        }
    }
    if (f[META_LABELS] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(&path, "labels");
        pt__cfg_string_map(cx, f[META_LABELS], &p);
    }
    if (f[META_ANNOTATIONS] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(&path, "annotations");
        pt__cfg_string_map(cx, f[META_ANNOTATIONS], &p);
    }
    return ok;
}

void pt__cfg_proxy_defaults(pt_proxy_settings_t *s)
{
    memset(s, 0, sizeof(*s));
    s->bind_address = "127.0.0.1";
    s->admin_port = 15000;
    s->concurrency = 2;
    s->max_connections = 10000;
    s->max_request_line_bytes = 8192;
    s->max_header_bytes = 61440;
    s->max_headers = 100;
    s->header_timeout_ms = 10000;
    s->idle_timeout_ms = 300000;
    s->upstream_idle_timeout_ms = 60000;
    s->connect_timeout_ms = 10000;
    s->drain_timeout_ms = 5000;
    s->access_log = "/dev/stdout";
    s->workload.ns = "default";
}

/* spec.workload: strings go straight to the snapshot arena. */
static void read_workload(pt_cfg_cx_t *cx, const pt_cfg_node_t *n, const pt_cfg_path_t *spec_path,
                          pt_workload_t *w)
{
    pt_cfg_path_t wp = PT_PATH_KEY(spec_path, "workload");
    const pt_cfg_node_t *f[WL__N];
    if (!MAP(cx, n, &wp, workload_fields, f))
        return;
    const char *s;
    if (f[WL_NAME] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(&wp, "name");
        if (pt__cfg_nonempty_str(cx, f[WL_NAME], &p, &s))
            w->name = pt__cfg_out_str(cx, s);
    }
    if (f[WL_NS] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(&wp, "namespace");
        if (pt__cfg_nonempty_str(cx, f[WL_NS], &p, &s))
            w->ns = pt__cfg_out_str(cx, s);
    }
    if (f[WL_SA] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(&wp, "serviceAccount");
        if (pt__cfg_nonempty_str(cx, f[WL_SA], &p, &s))
            w->service_account = pt__cfg_out_str(cx, s);
    }
    if (f[WL_LABELS] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(&wp, "labels");
        w->labels = read_labels(cx, f[WL_LABELS], &p, &w->n_labels);
    }
}

static void read_proxy(pt_cfg_cx_t *cx, pt_res_set_t *set, const pt_res_meta_t *meta,
                       const pt_cfg_node_t *spec)
{
    pt_res_proxy_t *p = pt_arena_calloc(cx->tmp, sizeof(*p));
    p->meta = *meta;
    pt_proxy_settings_t *s = &p->settings;
    pt__cfg_proxy_defaults(s);
    PUSH(cx, set->proxies, set->n_proxies, set->cap_proxies, p);
    if (spec == NULL)
        return; /* no spec: every default */

    pt_cfg_path_t sp = PT_PATH_KEY(NULL, "spec");
    const pt_cfg_node_t *f[PX__N];
    if (!MAP(cx, spec, &sp, proxy_fields, f))
        return;
    long long v;
#define FIELD_PATH(i) pt_cfg_path_t fp_##i = PT_PATH_KEY(&sp, proxy_fields[i].name)
#define INT_FIELD(i, lo, hi, dst)                                                                  \
    do {                                                                                           \
        FIELD_PATH(i);                                                                             \
        if (f[i] != NULL && pt__cfg_int(cx, f[i], &fp_##i, (lo), (hi), &v))                        \
            (dst) = (__typeof__(dst))v;                                                            \
    } while (0)
#define DURATION_FIELD(i, allow_zero, dst)                                                         \
    do {                                                                                           \
        FIELD_PATH(i);                                                                             \
        uint64_t ms;                                                                               \
        if (f[i] != NULL && pt__cfg_duration(cx, f[i], &fp_##i, &ms)) {                            \
            if (ms == 0 && !(allow_zero))                                                          \
                pt__cfg_error(cx, f[i], &fp_##i, "must be greater than 0");                        \
            else                                                                                   \
                (dst) = ms;                                                                        \
        }                                                                                          \
    } while (0)

    if (f[PX_BIND] != NULL) {
        FIELD_PATH(PX_BIND);
        const char *a;
        if (pt__cfg_nonempty_str(cx, f[PX_BIND], &fp_PX_BIND, &a)) {
            if (is_ip_literal(a, NULL, NULL))
                s->bind_address = a;
            else
                pt__cfg_error(cx, f[PX_BIND], &fp_PX_BIND,
                              "must be an IPv4 or IPv6 address, got \"%s\"", a);
        }
    }
    INT_FIELD(PX_ADMIN, 0, 65535, s->admin_port);
    INT_FIELD(PX_CONC, 1, 64, s->concurrency);
    INT_FIELD(PX_MAXCONN, 1, 1000000, s->max_connections);
    INT_FIELD(PX_MAXLINE, 256, 1048576, s->max_request_line_bytes);
    INT_FIELD(PX_MAXHDRBYTES, 1024, 1048576, s->max_header_bytes);
    INT_FIELD(PX_MAXHDRS, 1, 10000, s->max_headers);
    DURATION_FIELD(PX_HDR_TO, false, s->header_timeout_ms);
    DURATION_FIELD(PX_IDLE_TO, false, s->idle_timeout_ms);
    DURATION_FIELD(PX_UP_IDLE_TO, false, s->upstream_idle_timeout_ms);
    DURATION_FIELD(PX_CONNECT_TO, false, s->connect_timeout_ms);
    DURATION_FIELD(PX_DRAIN_TO, true, s->drain_timeout_ms);
    if (f[PX_ACCESS_LOG] != NULL) {
        FIELD_PATH(PX_ACCESS_LOG);
        const char *a;
        if (pt__cfg_str(cx, f[PX_ACCESS_LOG], &fp_PX_ACCESS_LOG, &a))
            s->access_log = a;
    }
    if (f[PX_WORKLOAD] != NULL)
        read_workload(cx, f[PX_WORKLOAD], &sp, &s->workload);
    INT_FIELD(PX_PROM_PORT, 0, 65535, s->prometheus_port);
    INT_FIELD(PX_HEALTH_PORT, 0, 65535, s->health_port);
    if (f[PX_LOG_FORMAT] != NULL) {
        FIELD_PATH(PX_LOG_FORMAT);
        const char *a;
        if (pt__cfg_str(cx, f[PX_LOG_FORMAT], &fp_PX_LOG_FORMAT, &a)) {
            if (strcmp(a, "text") == 0)
                s->access_log_json = false;
            else if (strcmp(a, "json") == 0)
                s->access_log_json = true;
            else
                pt__cfg_error(cx, f[PX_LOG_FORMAT], &fp_PX_LOG_FORMAT,
                              "unknown value \"%s\" (expected text or json)", a);
        }
    }
#undef FIELD_PATH
#undef INT_FIELD
#undef DURATION_FIELD
}

/* Istio's protocol names (case-insensitive, as Istio parses them). */
static pt_listener_protocol_t read_protocol(pt_cfg_cx_t *cx, const pt_cfg_node_t *n,
                                            const pt_cfg_path_t *path)
{
    static const char *const later[] = {"HTTPS", "HTTP2", "GRPC",  "GRPC-WEB", "TLS",
                                        "MONGO", "REDIS", "MYSQL", "UDP"};
    const char *s;
    if (!pt__cfg_nonempty_str(cx, n, path, &s))
        return 0;
    if (strcasecmp(s, "HTTP") == 0)
        return PT_LISTENER_HTTP;
    if (strcasecmp(s, "TCP") == 0)
        return PT_LISTENER_TCP;
    for (size_t i = 0; i < NF(later); i++)
        if (strcasecmp(s, later[i]) == 0) {
            /* Serving such a port as plain HTTP or TCP would be wrong (and, for TLS, would
             * expose in clear what was meant to be encrypted): the server opens nothing. */
            pt__cfg_warn(cx, n, path,
                         "protocol %s is not enforced by Petrel yet (HTTP and TCP are): this "
                         "server opens no listener",
                         later[i]);
            return 0;
        }
    pt__cfg_error(cx, n, path,
                  "unknown protocol \"%s\" (expected HTTP, HTTPS, HTTP2, GRPC, TLS or TCP)", s);
    return 0;
}

static void read_gateway(pt_cfg_cx_t *cx, pt_res_set_t *set, const pt_res_meta_t *meta,
                         const pt_cfg_node_t *spec)
{
    pt_res_gateway_t *g = pt_arena_calloc(cx->tmp, sizeof(*g));
    g->meta = *meta;
    PUSH(cx, set->gateways, set->n_gateways, set->cap_gateways, g);

    pt_cfg_path_t sp = PT_PATH_KEY(NULL, "spec");
    const pt_cfg_node_t *f[GW__N];
    if (!MAP(cx, spec, &sp, gateway_fields, f))
        return;
    if (f[GW_SELECTOR] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(&sp, "selector");
        pt__cfg_string_map(cx, f[GW_SELECTOR], &p);
    }
    pt_cfg_path_t svp = PT_PATH_KEY(&sp, "servers");
    const pt_cfg_node_t *servers = f[GW_SERVERS];
    if (servers == NULL) {
        pt__cfg_error(cx, spec, &svp, "required");
        return;
    }
    if (!pt__cfg_is_seq(cx, servers, &svp))
        return;
    if (servers->n_items == 0) {
        pt__cfg_error(cx, servers, &svp, "must not be empty");
        return;
    }
    g->servers = pt_arena_calloc(cx->tmp, servers->n_items * sizeof(*g->servers));
    for (size_t i = 0; i < servers->n_items; i++) {
        const pt_cfg_node_t *sn = servers->items[i];
        pt_cfg_path_t ip = PT_PATH_IDX(&svp, i);
        const pt_cfg_node_t *sf[SRV__N];
        if (!MAP(cx, sn, &ip, server_fields, sf))
            continue;
        pt_res_server_t *srv = &g->servers[g->n_servers++];
        const char *name;
        if (sf[SRV_NAME] != NULL) {
            pt_cfg_path_t p = PT_PATH_KEY(&ip, "name");
            pt__cfg_str(cx, sf[SRV_NAME], &p, &name);
        }
        pt_cfg_path_t hp = PT_PATH_KEY(&ip, "hosts");
        if (sf[SRV_HOSTS] == NULL)
            pt__cfg_error(cx, sn, &hp, "required");
        else
            srv->hosts = read_hosts(cx, sf[SRV_HOSTS], &hp, true, &srv->n_hosts);

        pt_cfg_path_t pp = PT_PATH_KEY(&ip, "port");
        if (sf[SRV_PORT] == NULL) {
            pt__cfg_error(cx, sn, &pp, "required");
            continue;
        }
        const pt_cfg_node_t *pf[PORT__N];
        if (!MAP(cx, sf[SRV_PORT], &pp, gw_port_fields, pf))
            continue;
        srv->port_node = sf[SRV_PORT];
        srv->port_path = pt__cfg_path_dup(cx->tmp, &pp);
        pt_cfg_path_t np = PT_PATH_KEY(&pp, "number");
        long long v;
        if (pf[PORT_NUMBER] == NULL)
            pt__cfg_error(cx, sf[SRV_PORT], &np, "required");
        else if (pt__cfg_int(cx, pf[PORT_NUMBER], &np, 1, 65535, &v))
            srv->port = (uint16_t)v;
        pt_cfg_path_t prp = PT_PATH_KEY(&pp, "protocol");
        if (pf[PORT_PROTOCOL] == NULL)
            pt__cfg_error(cx, sf[SRV_PORT], &prp, "required");
        else
            srv->protocol = read_protocol(cx, pf[PORT_PROTOCOL], &prp);
        srv->protocol_node = pf[PORT_PROTOCOL];
        if (pf[PORT_NAME] != NULL) {
            pt_cfg_path_t p = PT_PATH_KEY(&pp, "name");
            pt__cfg_str(cx, pf[PORT_NAME], &p, &name);
        }
    }
}

/* Defined with the DestinationRule readers below. */
static bool read_bool(pt_cfg_cx_t *cx, const pt_cfg_node_t *n, const pt_cfg_path_t *path,
                      bool *out);

/* How a StringMatch may be written where it is read. */
enum {
    SMF_ALLOW_EMPTY = 1, /* {} means "present" (headers, withoutHeaders, queryParams) */
    SMF_NO_PREFIX = 2,   /* queryParams: Istio matches them by exact or regex only */
};

/* Reads a StringMatch: exactly one of exact, prefix, regex (or none, written {}, when
 * SMF_ALLOW_EMPTY). A regex is compiled here, once, for a full match (RE2 semantics). Returns
 * true when *out was filled. */
static bool read_string_match(pt_cfg_cx_t *cx, const pt_cfg_node_t *n, const pt_cfg_path_t *path,
                              unsigned flags, pt_string_match_t *out)
{
    const pt_cfg_node_t *f[SM__N];
    memset(out, 0, sizeof(*out));
    if (!MAP(cx, n, path, string_match_fields, f))
        return false;
    size_t count = 0, which = 0;
    for (size_t i = 0; i < SM__N; i++)
        if (f[i] != NULL) {
            count++;
            which = i;
        }
    if (count == 0) {
        if (flags & SMF_ALLOW_EMPTY) {
            out->kind = PT_MATCH_PRESENT;
            out->value = "";
            return true;
        }
        /* An empty value (`exact: ""` is fine, `exact:` alone is null) or no field at all. */
        pt__cfg_error(cx, n, path, "needs exactly one of exact, prefix or regex");
        return false;
    }
    if (count > 1) {
        pt__cfg_error(cx, n, path, "give only one of exact, prefix or regex");
        return false;
    }
    pt_cfg_path_t vp = PT_PATH_KEY(path, string_match_fields[which].name);
    if (which == SM_PREFIX && (flags & SMF_NO_PREFIX)) {
        pt__cfg_error(cx, f[which], &vp,
                      "not supported for query parameters (Istio matches them by exact or regex)");
        return false;
    }
    const char *s;
    if (!pt__cfg_str(cx, f[which], &vp, &s))
        return false;
    out->value = pt__cfg_out_str(cx, s);
    out->len = f[which]->len;
    if (which == SM_REGEX) {
        char err[320];
        out->regex = pt_regex_compile(cx->out, s, f[which]->len, true, err, sizeof(err));
        if (out->regex == NULL) {
            pt__cfg_error(cx, f[which], &vp, "%s", err);
            return false;
        }
        out->kind = PT_MATCH_REGEX;
    } else {
        out->kind = which == SM_EXACT ? PT_MATCH_EXACT : PT_MATCH_PREFIX;
    }
    return true;
}

static bool is_token_char(unsigned char c)
{
    return isalnum(c) || strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static bool is_token(const char *s, size_t len)
{
    bool ok = len > 0;
    for (size_t j = 0; ok && j < len; j++)
        ok = is_token_char((unsigned char)s[j]);
    return ok;
}

/* headers / withoutHeaders (header names, lower-cased) or queryParams (names as written):
 * name -> StringMatch, {} meaning "present". */
static pt_header_match_t *read_name_matches(pt_cfg_cx_t *cx, const pt_cfg_node_t *n,
                                            const pt_cfg_path_t *path, bool is_query, size_t *out_n)
{
    *out_n = 0;
    if (!pt__cfg_is_map(cx, n, path) || n->n_pairs == 0)
        return NULL;
    pt_header_match_t *v = pt_arena_calloc(cx->out, n->n_pairs * sizeof(*v));
    for (size_t i = 0; i < n->n_pairs; i++) {
        const pt_cfg_node_t *k = n->pairs[i].key;
        pt_cfg_path_t kp = PT_PATH_KEY(path, k->str);
        if (!is_query && !is_token(k->str, k->len)) {
            pt__cfg_error(cx, k, &kp, "not a valid header name");
            continue;
        }
        if (is_query && k->len == 0) {
            pt__cfg_error(cx, k, &kp, "must not be empty");
            continue;
        }
        pt_header_match_t *hm = &v[*out_n];
        unsigned flags = SMF_ALLOW_EMPTY | (is_query ? SMF_NO_PREFIX : 0);
        if (read_string_match(cx, n->pairs[i].value, &kp, flags, &hm->match)) {
            hm->name = is_query ? pt__cfg_out_str(cx, k->str) : pt__cfg_out_lower(cx, k->str);
            (*out_n)++;
        }
    }
    return v;
}

static void read_http_match(pt_cfg_cx_t *cx, const pt_cfg_node_t *n, const pt_cfg_path_t *path,
                            pt_http_match_t *m)
{
    const pt_cfg_node_t *f[HM__N];
    if (!MAP(cx, n, path, http_match_fields, f))
        return;
    const char *s;
    if (f[HM_NAME] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(path, "name");
        pt__cfg_str(cx, f[HM_NAME], &p, &s);
    }
    if (f[HM_URI] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(path, "uri");
        m->has_uri = read_string_match(cx, f[HM_URI], &p, 0, &m->uri);
    }
    if (f[HM_SCHEME] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(path, "scheme");
        m->has_scheme = read_string_match(cx, f[HM_SCHEME], &p, 0, &m->scheme);
    }
    if (f[HM_AUTHORITY] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(path, "authority");
        m->has_authority = read_string_match(cx, f[HM_AUTHORITY], &p, 0, &m->authority);
    }
    if (f[HM_METHOD] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(path, "method");
        pt_string_match_t sm;
        if (read_string_match(cx, f[HM_METHOD], &p, 0, &sm)) {
            if (sm.kind == PT_MATCH_EXACT && sm.len == 0) {
                pt_cfg_path_t ep = PT_PATH_KEY(&p, "exact");
                pt__cfg_error(cx, f[HM_METHOD], &ep, "must not be empty");
            }
            m->has_method = true;
            m->method_match = sm;
            if (sm.kind == PT_MATCH_EXACT)
                m->method = sm.value;
        }
    }
    if (f[HM_HEADERS] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(path, "headers");
        m->headers = read_name_matches(cx, f[HM_HEADERS], &p, false, &m->n_headers);
    }
    if (f[HM_WITHOUT_HEADERS] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(path, "withoutHeaders");
        m->without_headers =
            read_name_matches(cx, f[HM_WITHOUT_HEADERS], &p, false, &m->n_without_headers);
    }
    if (f[HM_QUERY_PARAMS] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(path, "queryParams");
        m->query_params = read_name_matches(cx, f[HM_QUERY_PARAMS], &p, true, &m->n_query_params);
    }
    if (f[HM_PORT] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(path, "port");
        long long v;
        if (pt__cfg_int(cx, f[HM_PORT], &p, 1, 65535, &v))
            m->port = (uint16_t)v;
    }
    if (f[HM_IGNORE_URI_CASE] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(path, "ignoreUriCase");
        bool b = false;
        /* Istio: only exact and prefix URI matches ignore case; a regex says so itself. */
        if (read_bool(cx, f[HM_IGNORE_URI_CASE], &p, &b) && b && m->has_uri)
            m->uri.ignore_case = m->uri.kind != PT_MATCH_REGEX;
    }
    if (f[HM_SOURCE_LABELS] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(path, "sourceLabels");
        m->source_labels = read_labels(cx, f[HM_SOURCE_LABELS], &p, &m->n_source_labels);
    }
    if (f[HM_SOURCE_NAMESPACE] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(path, "sourceNamespace");
        if (pt__cfg_nonempty_str(cx, f[HM_SOURCE_NAMESPACE], &p, &s))
            m->source_namespace = pt__cfg_out_str(cx, s);
    }
}

/* ---- route actions: headers, rewrite, redirect ----------------------------------------- */

/* Headers a route may not change: Petrel writes them itself (framing, Host, the forwarding
 * headers), or they belong to one hop. */
static const char *const reserved_request_headers[] = {"host",
                                                       "content-length",
                                                       "transfer-encoding",
                                                       "connection",
                                                       "keep-alive",
                                                       "proxy-connection",
                                                       "te",
                                                       "trailer",
                                                       "upgrade",
                                                       "expect",
                                                       "x-forwarded-for",
                                                       "x-forwarded-proto",
                                                       "x-request-id",
                                                       NULL};
static const char *const reserved_response_headers[] = {
    "content-length", "transfer-encoding", "connection", "keep-alive", "proxy-connection", "te",
    "trailer",        "upgrade",           NULL};

static bool check_mutation_name(pt_cfg_cx_t *cx, const pt_cfg_node_t *n, const pt_cfg_path_t *path,
                                const char *name, size_t len, bool request)
{
    if (!is_token(name, len)) {
        pt__cfg_error(cx, n, path, "not a valid header name");
        return false;
    }
    for (const char *const *r = request ? reserved_request_headers : reserved_response_headers;
         *r != NULL; r++)
        if (strlen(*r) == len && strncasecmp(*r, name, len) == 0) {
            if (request && strcmp(*r, "host") == 0)
                pt__cfg_error(cx, n, path, "Host cannot be set here: use rewrite.authority");
            else
                pt__cfg_error(cx, n, path,
                              "%s is written by Petrel itself and cannot be changed by a route",
                              *r);
            return false;
        }
    return true;
}

/* Visible ASCII and spaces/tabs inside, as a header value may hold (never CR, LF, NUL). */
static bool is_header_value(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return false;
    }
    return true;
}

/* Visible ASCII only: what can go into a request line or a Location. */
static bool is_visible_ascii(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
            return false;
    return true;
}

static void read_header_ops(pt_cfg_cx_t *cx, const pt_cfg_node_t *n, const pt_cfg_path_t *path,
                            bool request, pt_header_ops_t *ops)
{
    const pt_cfg_node_t *f[HOP__N];
    if (!MAP(cx, n, path, header_ops_fields, f))
        return;
    for (int which = HOP_SET; which <= HOP_ADD; which++) {
        const pt_cfg_node_t *m = f[which];
        if (m == NULL)
            continue;
        pt_cfg_path_t p = PT_PATH_KEY(path, header_ops_fields[which].name);
        if (!pt__cfg_string_map(cx, m, &p) || m->n_pairs == 0)
            continue;
        pt_header_op_t *v = pt_arena_calloc(cx->out, m->n_pairs * sizeof(*v));
        size_t k = 0;
        for (size_t i = 0; i < m->n_pairs; i++) {
            const pt_cfg_node_t *key = m->pairs[i].key, *val = m->pairs[i].value;
            pt_cfg_path_t kp = PT_PATH_KEY(&p, key->str);
            if (!check_mutation_name(cx, key, &kp, key->str, key->len, request))
                continue;
            const char *value = val->type == PT_CFG_NULL ? "" : val->str;
            size_t value_len = val->type == PT_CFG_NULL ? 0 : val->len;
            if (!is_header_value(value, value_len)) {
                pt__cfg_error(cx, val, &kp, "not a valid header value (control characters)");
                continue;
            }
            v[k++] = (pt_header_op_t){pt__cfg_out_lower(cx, key->str), key->len,
                                      pt__cfg_out_str(cx, value), value_len};
        }
        if (which == HOP_SET) {
            ops->set = v;
            ops->n_set = k;
        } else {
            ops->add = v;
            ops->n_add = k;
        }
    }
    if (f[HOP_REMOVE] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(path, "remove");
        const pt_cfg_node_t *l = f[HOP_REMOVE];
        if (pt__cfg_is_seq(cx, l, &p) && l->n_items > 0) {
            pt_header_op_t *v = pt_arena_calloc(cx->out, l->n_items * sizeof(*v));
            size_t k = 0;
            for (size_t i = 0; i < l->n_items; i++) {
                pt_cfg_path_t ip = PT_PATH_IDX(&p, i);
                const char *s;
                if (!pt__cfg_nonempty_str(cx, l->items[i], &ip, &s) ||
                    !check_mutation_name(cx, l->items[i], &ip, s, l->items[i]->len, request))
                    continue;
                v[k++] = (pt_header_op_t){pt__cfg_out_lower(cx, s), l->items[i]->len, NULL, 0};
            }
            ops->remove = v;
            ops->n_remove = k;
        }
    }
}

/* Istio's Headers {request, response}; NULL when it changes nothing. */
static const pt_header_mutations_t *read_headers(pt_cfg_cx_t *cx, const pt_cfg_node_t *n,
                                                 const pt_cfg_path_t *path)
{
    const pt_cfg_node_t *f[HDR__N];
    if (!MAP(cx, n, path, headers_fields, f))
        return NULL;
    pt_header_mutations_t *hm = pt_arena_calloc(cx->out, sizeof(*hm));
    if (f[HDR_REQUEST] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(path, "request");
        read_header_ops(cx, f[HDR_REQUEST], &p, true, &hm->request);
    }
    if (f[HDR_RESPONSE] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(path, "response");
        read_header_ops(cx, f[HDR_RESPONSE], &p, false, &hm->response);
    }
    const pt_header_ops_t *q = &hm->request, *r = &hm->response;
    if (q->n_set + q->n_add + q->n_remove + r->n_set + r->n_add + r->n_remove == 0)
        return NULL;
    return hm;
}

/* host[:port] as it may appear in Host or a Location: no spaces, slashes, controls. */
static bool is_authority(const char *s, size_t len)
{
    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!(isalnum(c) || strchr("-._~%!$&'()*+,;=:[]", c) != NULL))
            return false;
    }
    return true;
}

static bool read_authority(pt_cfg_cx_t *cx, const pt_cfg_node_t *n, const pt_cfg_path_t *path,
                           const char **out, size_t *out_len)
{
    const char *s;
    if (!pt__cfg_nonempty_str(cx, n, path, &s))
        return false;
    if (!is_authority(s, n->len)) {
        pt__cfg_error(cx, n, path, "not a valid authority (host[:port]): \"%s\"", s);
        return false;
    }
    *out = pt__cfg_out_str(cx, s);
    *out_len = n->len;
    return true;
}

/* A path for a rewrite or a redirect: starts with '/', visible ASCII only. */
static bool read_uri(pt_cfg_cx_t *cx, const pt_cfg_node_t *n, const pt_cfg_path_t *path,
                     const char **out, size_t *out_len)
{
    const char *s;
    if (!pt__cfg_nonempty_str(cx, n, path, &s))
        return false;
    if (s[0] != '/' || !is_visible_ascii(s, n->len)) {
        pt__cfg_error(cx, n, path,
                      "must be a path starting with \"/\", without spaces or control characters");
        return false;
    }
    *out = pt__cfg_out_str(cx, s);
    *out_len = n->len;
    return true;
}

static const pt_http_rewrite_t *read_rewrite(pt_cfg_cx_t *cx, const pt_cfg_node_t *n,
                                             const pt_cfg_path_t *path)
{
    const pt_cfg_node_t *f[RW__N];
    if (!MAP(cx, n, path, rewrite_fields, f))
        return NULL;
    pt_http_rewrite_t *rw = pt_arena_calloc(cx->out, sizeof(*rw));
    bool ok = true;
    if (f[RW_URI] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(path, "uri");
        ok &= read_uri(cx, f[RW_URI], &p, &rw->uri, &rw->uri_len);
    }
    if (f[RW_AUTHORITY] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(path, "authority");
        ok &= read_authority(cx, f[RW_AUTHORITY], &p, &rw->authority, &rw->authority_len);
    }
    if (f[RW_URI_REGEX] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(path, "uriRegexRewrite");
        const pt_cfg_node_t *rf[RR__N];
        if (!MAP(cx, f[RW_URI_REGEX], &p, regex_rewrite_fields, rf)) {
            ok = false;
        } else {
            pt_cfg_path_t mp = PT_PATH_KEY(&p, "match"), rp = PT_PATH_KEY(&p, "rewrite");
            const char *s;
            if (rf[RR_MATCH] == NULL) {
                pt__cfg_error(cx, f[RW_URI_REGEX], &mp, "required");
                ok = false;
            } else if (pt__cfg_nonempty_str(cx, rf[RR_MATCH], &mp, &s)) {
                char err[320];
                rw->uri_regex =
                    pt_regex_compile(cx->out, s, rf[RR_MATCH]->len, false, err, sizeof(err));
                if (rw->uri_regex == NULL) {
                    pt__cfg_error(cx, rf[RR_MATCH], &mp, "%s", err);
                    ok = false;
                }
            } else {
                ok = false;
            }
            if (rf[RR_REWRITE] == NULL) {
                pt__cfg_error(cx, f[RW_URI_REGEX], &rp, "required");
                ok = false;
            } else if (pt__cfg_str(cx, rf[RR_REWRITE], &rp, &s)) {
                size_t len = rf[RR_REWRITE]->len;
                uint32_t groups = rw->uri_regex ? pt_regex_groups(rw->uri_regex) : 9;
                for (size_t i = 0; i < len && ok; i++) {
                    if (s[i] != '\\')
                        continue;
                    if (i + 1 == len) {
                        pt__cfg_error(cx, rf[RR_REWRITE], &rp, "ends with a lone backslash");
                        ok = false;
                    } else if (s[i + 1] >= '0' && s[i + 1] <= '9' &&
                               (uint32_t)(s[i + 1] - '0') > groups) {
                        pt__cfg_error(cx, rf[RR_REWRITE], &rp,
                                      "refers to group \\%c but the regex has %u", s[i + 1],
                                      (unsigned)groups);
                        ok = false;
                    }
                    i++;
                }
                if (ok && !is_visible_ascii(s, len)) {
                    pt__cfg_error(cx, rf[RR_REWRITE], &rp,
                                  "must not contain spaces or control characters");
                    ok = false;
                }
                rw->uri_regex_rewrite = pt__cfg_out_str(cx, s);
                rw->uri_regex_rewrite_len = len;
            } else {
                ok = false;
            }
        }
        if (f[RW_URI] != NULL) {
            pt__cfg_error(cx, n, path, "give only one of uri or uriRegexRewrite");
            ok = false;
        }
    }
    if (f[RW_URI] == NULL && f[RW_AUTHORITY] == NULL && f[RW_URI_REGEX] == NULL) {
        pt__cfg_error(cx, n, path, "needs uri, authority or uriRegexRewrite");
        ok = false;
    }
    return ok ? rw : NULL;
}

static const pt_http_redirect_t *read_redirect(pt_cfg_cx_t *cx, const pt_cfg_node_t *n,
                                               const pt_cfg_path_t *path)
{
    const pt_cfg_node_t *f[RDR__N];
    if (!MAP(cx, n, path, redirect_fields, f))
        return NULL;
    pt_http_redirect_t *rd = pt_arena_calloc(cx->out, sizeof(*rd));
    rd->code = 301;
    bool ok = true;
    long long v;
    if (f[RD_URI] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(path, "uri");
        ok &= read_uri(cx, f[RD_URI], &p, &rd->uri, &rd->uri_len);
    }
    if (f[RD_AUTHORITY] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(path, "authority");
        ok &= read_authority(cx, f[RD_AUTHORITY], &p, &rd->authority, &rd->authority_len);
    }
    if (f[RD_PORT] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(path, "port");
        if (pt__cfg_int(cx, f[RD_PORT], &p, 1, 65535, &v))
            rd->port = (uint16_t)v;
        else
            ok = false;
    }
    if (f[RD_DERIVE_PORT] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(path, "derivePort");
        const char *s;
        if (!pt__cfg_str(cx, f[RD_DERIVE_PORT], &p, &s)) {
            ok = false;
        } else if (strcmp(s, "FROM_REQUEST_PORT") == 0) {
            rd->port_from_request = true;
        } else if (strcmp(s, "FROM_PROTOCOL_DEFAULT") != 0) {
            pt__cfg_error(cx, f[RD_DERIVE_PORT], &p,
                          "unknown value \"%s\" (expected FROM_PROTOCOL_DEFAULT or "
                          "FROM_REQUEST_PORT)",
                          s);
            ok = false;
        }
        if (f[RD_PORT] != NULL) {
            pt__cfg_error(cx, n, path, "give only one of port or derivePort");
            ok = false;
        }
    }
    if (f[RD_SCHEME] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(path, "scheme");
        const char *s;
        if (pt__cfg_nonempty_str(cx, f[RD_SCHEME], &p, &s)) {
            bool valid = isalpha((unsigned char)s[0]);
            for (size_t i = 1; valid && s[i]; i++)
                valid = isalnum((unsigned char)s[i]) || strchr("+-.", s[i]) != NULL;
            if (valid) {
                rd->scheme = pt__cfg_out_lower(cx, s);
            } else {
                pt__cfg_error(cx, f[RD_SCHEME], &p, "not a valid URI scheme: \"%s\"", s);
                ok = false;
            }
        } else {
            ok = false;
        }
    }
    if (f[RD_CODE] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(path, "redirectCode");
        if (!pt__cfg_int(cx, f[RD_CODE], &p, 100, 999, &v)) {
            ok = false;
        } else if (v != 301 && v != 302 && v != 303 && v != 307 && v != 308) {
            pt__cfg_error(cx, f[RD_CODE], &p, "must be 301, 302, 303, 307 or 308, got %lld", v);
            ok = false;
        } else {
            rd->code = (int)v;
        }
    }
    if (f[RD_URI] == NULL && f[RD_AUTHORITY] == NULL && f[RD_SCHEME] == NULL &&
        f[RD_PORT] == NULL && f[RD_DERIVE_PORT] == NULL) {
        pt__cfg_error(cx, n, path, "needs uri, authority, scheme, port or derivePort");
        ok = false;
    }
    return ok ? rd : NULL;
}

static void read_destination(pt_cfg_cx_t *cx, const pt_cfg_node_t *n, const pt_cfg_path_t *path,
                             pt_res_dest_t *d)
{
    const pt_cfg_node_t *f[DST__N];
    d->node = n;
    d->path = pt__cfg_path_dup(cx->tmp, path);
    if (!MAP(cx, n, path, destination_fields, f))
        return;
    pt_cfg_path_t hp = PT_PATH_KEY(path, "host");
    const char *host;
    if (f[DST_HOST] == NULL) {
        pt__cfg_error(cx, n, &hp, "required");
    } else if (pt__cfg_nonempty_str(cx, f[DST_HOST], &hp, &host)) {
        const char *why = pt__cfg_host_problem(host);
        if (why == NULL && host[0] == '*')
            why = "a destination cannot be a wildcard";
        if (why != NULL)
            pt__cfg_error(cx, f[DST_HOST], &hp, "invalid host \"%s\": %s", host, why);
        else
            d->host = pt__cfg_out_lower(cx, host);
    }
    if (f[DST_PORT] != NULL) {
        pt_cfg_path_t pp = PT_PATH_KEY(path, "port");
        const pt_cfg_node_t *pf[PS__N];
        if (MAP(cx, f[DST_PORT], &pp, port_selector_fields, pf)) {
            pt_cfg_path_t np = PT_PATH_KEY(&pp, "number");
            long long v;
            if (pf[PS_NUMBER] == NULL)
                pt__cfg_error(cx, f[DST_PORT], &np, "required");
            else if (pt__cfg_int(cx, pf[PS_NUMBER], &np, 1, 65535, &v))
                d->port = (uint16_t)v;
        }
    }
    if (f[DST_SUBSET] != NULL) {
        pt_cfg_path_t sp = PT_PATH_KEY(path, "subset");
        const char *s;
        if (pt__cfg_nonempty_str(cx, f[DST_SUBSET], &sp, &s)) {
            d->subset = pt__cfg_out_str(cx, s);
            d->subset_node = f[DST_SUBSET];
        }
    }
}

/* route[] of an HTTP or TCP route: {destination, weight}. */
static pt_res_dest_t *read_dests(pt_cfg_cx_t *cx, const pt_cfg_node_t *n, const pt_cfg_path_t *path,
                                 const pt_cfg_field_t *table, size_t n_fields, size_t *out_n)
{
    *out_n = 0;
    if (!pt__cfg_is_seq(cx, n, path) || n->n_items == 0)
        return NULL;
    pt_res_dest_t *dests = pt_arena_calloc(cx->tmp, n->n_items * sizeof(*dests));
    for (size_t i = 0; i < n->n_items; i++) {
        pt_cfg_path_t ip = PT_PATH_IDX(path, i);
        const pt_cfg_node_t *f[4]; /* HD__N and RD__N are both <= 4 */
        if (!pt__cfg_map(cx, n->items[i], &ip, table, n_fields, f))
            continue;
        /* Both tables start with destination, weight. */
        pt_res_dest_t *d = &dests[*out_n];
        pt_cfg_path_t dp = PT_PATH_KEY(&ip, "destination");
        if (f[0] == NULL) {
            pt__cfg_error(cx, n->items[i], &dp, "required");
            continue;
        }
        read_destination(cx, f[0], &dp, d);
        if (f[1] != NULL) {
            pt_cfg_path_t wp = PT_PATH_KEY(&ip, "weight");
            long long v;
            if (pt__cfg_int(cx, f[1], &wp, 0, 2147483647, &v)) {
                d->has_weight = true;
                d->weight = (uint32_t)v;
            } else {
                d->has_weight = true; /* reported; don't add "weight required" */
            }
        }
        if (table == http_dest_fields && f[HD_HEADERS] != NULL) {
            pt_cfg_path_t hp = PT_PATH_KEY(&ip, "headers");
            d->headers = read_headers(cx, f[HD_HEADERS], &hp);
        }
        d->node = n->items[i];
        d->path = pt__cfg_path_dup(cx->tmp, &ip);
        (*out_n)++;
    }
    return dests;
}

/* percentage {value: 0..100, fractions allowed} in parts per million. */
static bool read_fault_percentage(pt_cfg_cx_t *cx, const pt_cfg_node_t *n,
                                  const pt_cfg_path_t *path, uint32_t *out_ppm)
{
    const pt_cfg_node_t *f[1];
    if (!MAP(cx, n, path, fault_percent_fields, f))
        return false;
    *out_ppm = 0; /* Istio: a percentage without a value is 0 */
    if (f[0] == NULL)
        return true;
    pt_cfg_path_t vp = PT_PATH_KEY(path, "value");
    const char *s;
    if (!pt__cfg_str(cx, f[0], &vp, &s))
        return false;
    char *end = NULL;
    double v = strtod(s, &end);
    if (*s == '\0' || end == NULL || *end != '\0' || !(v >= 0.0 && v <= 100.0)) {
        pt__cfg_error(cx, f[0], &vp, "must be a number from 0 to 100");
        return false;
    }
    *out_ppm = (uint32_t)(v * (PT_FAULT_SCALE / 100) + 0.5);
    return true;
}

/* fault: delay then abort, as Envoy's fault filter runs them. As in Istio, a delay or abort
 * without a percentage applies to no request (Istio passes the integer `percent`, 0 when
 * unset, and Envoy reads an unset fraction as 0); the deprecated `percent` is read as a
 * percentage when `percentage` is absent. */
static const pt_http_fault_t *read_fault(pt_cfg_cx_t *cx, const pt_cfg_node_t *n,
                                         const pt_cfg_path_t *path)
{
    const pt_cfg_node_t *f[FLT__N];
    if (!MAP(cx, n, path, fault_fields, f))
        return NULL;
    pt_http_fault_t *flt = pt_arena_calloc(cx->out, sizeof(*flt));
    if (f[FLT_DELAY] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(path, "delay");
        const pt_cfg_node_t *df[FD__N];
        if (MAP(cx, f[FLT_DELAY], &p, delay_fields, df)) {
            flt->delay_ppm = 0;
            if (df[FD_PERCENTAGE] != NULL) {
                pt_cfg_path_t pp = PT_PATH_KEY(&p, "percentage");
                read_fault_percentage(cx, df[FD_PERCENTAGE], &pp, &flt->delay_ppm);
            } else if (df[FD_PERCENT] != NULL) {
                pt_cfg_path_t pp = PT_PATH_KEY(&p, "percent");
                long long v;
                if (pt__cfg_int(cx, df[FD_PERCENT], &pp, 0, 100, &v))
                    flt->delay_ppm = (uint32_t)v * (PT_FAULT_SCALE / 100);
                pt__cfg_warn(cx, df[FD_PERCENT], &pp,
                             "deprecated: use percentage.value (read as that)");
            }
            pt_cfg_path_t fp = PT_PATH_KEY(&p, "fixedDelay");
            if (df[FD_FIXED] == NULL) {
                if (df[FD_EXPONENTIAL] == NULL)
                    pt__cfg_error(cx, f[FLT_DELAY], &fp, "required");
            } else if (pt__cfg_duration(cx, df[FD_FIXED], &fp, &flt->delay_ms) &&
                       flt->delay_ms == 0) {
                pt__cfg_error(cx, df[FD_FIXED], &fp, "must be greater than 0");
            }
        }
    }
    if (f[FLT_ABORT] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(path, "abort");
        const pt_cfg_node_t *af[FA__N];
        if (MAP(cx, f[FLT_ABORT], &p, abort_fields, af)) {
            uint32_t ppm = 0;
            if (af[FA_PERCENTAGE] != NULL) {
                pt_cfg_path_t pp = PT_PATH_KEY(&p, "percentage");
                read_fault_percentage(cx, af[FA_PERCENTAGE], &pp, &ppm);
            }
            int kinds = (af[FA_HTTP] != NULL) + (af[FA_GRPC] != NULL) + (af[FA_HTTP2] != NULL);
            if (kinds == 0)
                pt__cfg_error(cx, f[FLT_ABORT], &p,
                              "needs one of httpStatus, grpcStatus or http2Error");
            else if (kinds > 1)
                pt__cfg_error(cx, f[FLT_ABORT], &p,
                              "httpStatus, grpcStatus and http2Error are exclusive: give one");
            if (af[FA_HTTP] != NULL) {
                pt_cfg_path_t sp = PT_PATH_KEY(&p, "httpStatus");
                long long v;
                if (pt__cfg_int(cx, af[FA_HTTP], &sp, 200, 599, &v)) {
                    flt->abort_status = (int)v;
                    flt->abort_ppm = ppm;
                }
            }
        }
    }
    return flt->delay_ms > 0 || flt->abort_status != 0 ? flt : NULL;
}

static void read_http_route(pt_cfg_cx_t *cx, pt_res_vs_t *vs, const pt_cfg_node_t *n,
                            const pt_cfg_path_t *path, size_t index, pt_res_http_route_t *hr)
{
    const pt_cfg_node_t *f[HR__N];
    hr->node = n;
    hr->path = pt__cfg_path_dup(cx->tmp, path);
    hr->route.virtual_service = vs->qname;
    hr->route.name = pt_arena_printf(cx->out, "%s.%zu", vs->meta.name, index);
    if (!MAP(cx, n, path, http_route_fields, f))
        return;
    if (f[HR_NAME] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(path, "name");
        const char *s;
        if (pt__cfg_nonempty_str(cx, f[HR_NAME], &p, &s))
            hr->route.name = pt__cfg_out_str(cx, s);
    }
    if (f[HR_MATCH] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(path, "match");
        const pt_cfg_node_t *m = f[HR_MATCH];
        if (pt__cfg_is_seq(cx, m, &p) && m->n_items > 0) {
            hr->route.matches = pt_arena_calloc(cx->out, m->n_items * sizeof(pt_http_match_t));
            hr->route.n_matches = m->n_items;
            for (size_t i = 0; i < m->n_items; i++) {
                pt_cfg_path_t ip = PT_PATH_IDX(&p, i);
                read_http_match(cx, m->items[i], &ip, &hr->route.matches[i]);
            }
        }
    }
    if (f[HR_TIMEOUT] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(path, "timeout");
        pt__cfg_duration(cx, f[HR_TIMEOUT], &p, &hr->route.timeout_ms);
    }
    bool has_route = false, has_direct = f[HR_DIRECT] != NULL;
    if (f[HR_ROUTE] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(path, "route");
        hr->dests = read_dests(cx, f[HR_ROUTE], &p, http_dest_fields, HD__N, &hr->n_dests);
        has_route = f[HR_ROUTE]->type != PT_CFG_SEQ || f[HR_ROUTE]->n_items > 0;
    }
    if (has_direct) {
        pt_cfg_path_t p = PT_PATH_KEY(path, "directResponse");
        const pt_cfg_node_t *df[DR__N];
        if (MAP(cx, f[HR_DIRECT], &p, direct_response_fields, df)) {
            pt_cfg_path_t sp = PT_PATH_KEY(&p, "status");
            long long v;
            if (df[DR_STATUS] == NULL)
                pt__cfg_error(cx, f[HR_DIRECT], &sp, "required");
            else if (pt__cfg_int(cx, df[DR_STATUS], &sp, 200, 599, &v))
                hr->route.direct_status = (int)v;
            if (df[DR_BODY] != NULL) {
                pt_cfg_path_t bp = PT_PATH_KEY(&p, "body");
                const pt_cfg_node_t *bf[BODY__N];
                if (MAP(cx, df[DR_BODY], &bp, body_fields, bf) && bf[BODY_STRING] != NULL) {
                    pt_cfg_path_t stp = PT_PATH_KEY(&bp, "string");
                    const char *s;
                    if (pt__cfg_str(cx, bf[BODY_STRING], &stp, &s)) {
                        hr->route.direct_body = pt__cfg_out_str(cx, s);
                        hr->route.direct_body_len = bf[BODY_STRING]->len;
                    }
                }
            }
        }
    }
    if (f[HR_HEADERS] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(path, "headers");
        hr->route.headers = read_headers(cx, f[HR_HEADERS], &p);
    }
    if (f[HR_REWRITE] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(path, "rewrite");
        hr->route.rewrite = read_rewrite(cx, f[HR_REWRITE], &p);
    }
    if (f[HR_FAULT] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(path, "fault");
        hr->route.fault = read_fault(cx, f[HR_FAULT], &p);
    }
    bool has_redirect = f[HR_REDIRECT] != NULL;
    if (has_redirect) {
        pt_cfg_path_t p = PT_PATH_KEY(path, "redirect");
        hr->route.redirect = read_redirect(cx, f[HR_REDIRECT], &p);
    }
    /* delegate is an action too: when it is given (and reported as unsupported), "needs a
     * route" would only be noise. Exclusions as Istio's validation has them. */
    bool other_action = f[HR_DELEGATE] != NULL;
    if (has_redirect && (has_route || has_direct))
        pt__cfg_error(cx, n, path,
                      "redirect, route and directResponse are exclusive: give exactly one");
    else if (has_redirect && f[HR_REWRITE] != NULL)
        pt__cfg_error(cx, n, path, "rewrite and redirect are exclusive: give only one");
    else if (has_route && has_direct)
        pt__cfg_error(cx, n, path, "route and directResponse are exclusive: give exactly one");
    else if (!has_route && !has_direct && !has_redirect && !other_action)
        pt__cfg_error(cx, n, path, "needs a route or a directResponse");
}

static void read_tcp_route(pt_cfg_cx_t *cx, const pt_cfg_node_t *n, const pt_cfg_path_t *path,
                           pt_res_tcp_route_t *tr)
{
    const pt_cfg_node_t *f[TR__N];
    tr->node = n;
    tr->path = pt__cfg_path_dup(cx->tmp, path);
    tr->match_any = true;
    if (!MAP(cx, n, path, tcp_route_fields, f))
        return;
    if (f[TR_MATCH] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(path, "match");
        const pt_cfg_node_t *m = f[TR_MATCH];
        if (pt__cfg_is_seq(cx, m, &p) && m->n_items > 0) {
            tr->match_any = false;
            tr->match_ports = pt_arena_calloc(cx->tmp, m->n_items * sizeof(uint16_t));
            for (size_t i = 0; i < m->n_items; i++) {
                pt_cfg_path_t ip = PT_PATH_IDX(&p, i);
                const pt_cfg_node_t *lf[L4__N];
                if (!MAP(cx, m->items[i], &ip, l4_match_fields, lf))
                    continue;
                if (lf[L4_PORT] == NULL) {
                    tr->match_any = true;
                    continue;
                }
                pt_cfg_path_t pp = PT_PATH_KEY(&ip, "port");
                long long v;
                if (pt__cfg_int(cx, lf[L4_PORT], &pp, 1, 65535, &v))
                    tr->match_ports[tr->n_matches++] = (uint16_t)v;
            }
        }
    }
    pt_cfg_path_t rp = PT_PATH_KEY(path, "route");
    if (f[TR_ROUTE] == NULL)
        pt__cfg_error(cx, n, &rp, "required");
    else {
        tr->dests = read_dests(cx, f[TR_ROUTE], &rp, route_dest_fields, RD__N, &tr->n_dests);
        if (f[TR_ROUTE]->type == PT_CFG_SEQ && f[TR_ROUTE]->n_items == 0)
            pt__cfg_error(cx, f[TR_ROUTE], &rp, "must not be empty");
    }
}

static void read_virtual_service(pt_cfg_cx_t *cx, pt_res_set_t *set, const pt_res_meta_t *meta,
                                 const pt_cfg_node_t *spec)
{
    pt_res_vs_t *vs = pt_arena_calloc(cx->tmp, sizeof(*vs));
    vs->meta = *meta;
    vs->qname = pt_arena_printf(cx->out, "%s/%s", meta->ns, meta->name);
    PUSH(cx, set->vss, set->n_vss, set->cap_vss, vs);

    pt_cfg_path_t sp = PT_PATH_KEY(NULL, "spec");
    const pt_cfg_node_t *f[VS__N];
    if (!MAP(cx, spec, &sp, vs_fields, f))
        return;
    pt_cfg_path_t hp = PT_PATH_KEY(&sp, "hosts");
    if (f[VS_HOSTS] == NULL)
        pt__cfg_error(cx, spec, &hp, "required");
    else
        vs->hosts = read_hosts(cx, f[VS_HOSTS], &hp, false, &vs->n_hosts);
    if (f[VS_EXPORT_TO] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(&sp, "exportTo");
        pt__cfg_is_seq(cx, f[VS_EXPORT_TO], &p);
    }

    /* gateways: absent means "mesh" in Istio, i.e. sidecar routing, which Petrel does not do
     * yet. "mesh" next to real gateways is left out (it would bind the sidecars). */
    pt_cfg_path_t gp = PT_PATH_KEY(&sp, "gateways");
    const pt_cfg_node_t *g = f[VS_GATEWAYS];
    static const char mesh_only[] = "mesh routing (the sidecar) is not enforced by Petrel yet: "
                                    "this VirtualService applies to no listener";
    if (g == NULL) {
        /* Istio's default is mesh: validate the routes all the same, bind nothing. */
        pt__cfg_warn(cx, spec, &gp, "%s (no gateways means mesh)", mesh_only);
        vs->mesh_only = true;
    } else if (pt__cfg_is_seq(cx, g, &gp)) {
        vs->gateways = pt_arena_calloc(cx->tmp, (g->n_items + 1) * sizeof(*vs->gateways));
        bool any = false;
        const pt_cfg_node_t *mesh_node = NULL;
        pt_cfg_path_t mesh_path = gp;
        for (size_t i = 0; i < g->n_items; i++) {
            pt_cfg_path_t ip = PT_PATH_IDX(&gp, i);
            const char *s;
            if (!pt__cfg_nonempty_str(cx, g->items[i], &ip, &s))
                continue;
            any = true;
            if (strcmp(s, "mesh") == 0) {
                mesh_node = g->items[i];
                mesh_path = ip;
                continue;
            }
            pt_res_gateway_ref_t *r = &vs->gateways[vs->n_gateways];
            const char *slash = strchr(s, '/');
            if (slash != NULL) {
                r->ns = pt_arena_strndup(cx->tmp, s, (size_t)(slash - s));
                r->name = slash + 1;
            } else {
                r->ns = meta->ns;
                r->name = s;
            }
            if (r->ns[0] == '\0' || r->name[0] == '\0' || strchr(r->name, '/') != NULL) {
                pt__cfg_error(cx, g->items[i], &ip,
                              "must be \"<namespace>/<name>\" or \"<name>\", got \"%s\"", s);
                continue;
            }
            r->node = g->items[i];
            r->path = pt__cfg_path_dup(cx->tmp, &ip);
            vs->n_gateways++;
        }
        if (any && vs->n_gateways == 0 && mesh_node != NULL) {
            pt__cfg_warn(cx, mesh_node, &mesh_path, "%s", mesh_only);
            vs->mesh_only = true;
        } else if (mesh_node != NULL) {
            pt__cfg_warn(cx, mesh_node, &mesh_path,
                         "mesh routing (the sidecar) is not enforced by Petrel yet: this "
                         "VirtualService applies to its Gateways only");
        } else if (!any)
            pt__cfg_error(cx, g, &gp, "must not be empty");
    }

    if (f[VS_HTTP] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(&sp, "http");
        const pt_cfg_node_t *h = f[VS_HTTP];
        if (pt__cfg_is_seq(cx, h, &p) && h->n_items > 0) {
            vs->http = pt_arena_calloc(cx->tmp, h->n_items * sizeof(*vs->http));
            vs->n_http = h->n_items;
            for (size_t i = 0; i < h->n_items; i++) {
                pt_cfg_path_t ip = PT_PATH_IDX(&p, i);
                read_http_route(cx, vs, h->items[i], &ip, i, &vs->http[i]);
            }
        }
    }
    if (f[VS_TCP] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(&sp, "tcp");
        const pt_cfg_node_t *t = f[VS_TCP];
        if (pt__cfg_is_seq(cx, t, &p) && t->n_items > 0) {
            vs->tcp = pt_arena_calloc(cx->tmp, t->n_items * sizeof(*vs->tcp));
            vs->n_tcp = t->n_items;
            for (size_t i = 0; i < t->n_items; i++) {
                pt_cfg_path_t ip = PT_PATH_IDX(&p, i);
                read_tcp_route(cx, t->items[i], &ip, &vs->tcp[i]);
            }
        }
    }
    if (vs->n_http == 0 && vs->n_tcp == 0 && f[VS_TLS] == NULL && f[VS_HTTP] == NULL &&
        f[VS_TCP] == NULL)
        pt__cfg_error(cx, spec, &sp, "needs http or tcp routes");
}

static void read_service_entry(pt_cfg_cx_t *cx, pt_res_set_t *set, const pt_res_meta_t *meta,
                               const pt_cfg_node_t *spec)
{
    pt_res_se_t *se = pt_arena_calloc(cx->tmp, sizeof(*se));
    se->meta = *meta;
    PUSH(cx, set->ses, set->n_ses, set->cap_ses, se);

    pt_cfg_path_t sp = PT_PATH_KEY(NULL, "spec");
    const pt_cfg_node_t *f[SE__N];
    if (!MAP(cx, spec, &sp, se_fields, f))
        return;
    pt_cfg_path_t hp = PT_PATH_KEY(&sp, "hosts");
    if (f[SE_HOSTS] == NULL)
        pt__cfg_error(cx, spec, &hp, "required");
    else
        se->hosts = read_hosts(cx, f[SE_HOSTS], &hp, false, &se->n_hosts);

    if (f[SE_ADDRESSES] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(&sp, "addresses");
        if (pt__cfg_is_seq(cx, f[SE_ADDRESSES], &p))
            for (size_t i = 0; i < f[SE_ADDRESSES]->n_items; i++) {
                pt_cfg_path_t ip = PT_PATH_IDX(&p, i);
                const char *s;
                pt__cfg_str(cx, f[SE_ADDRESSES]->items[i], &ip, &s);
            }
    }
    if (f[SE_EXPORT_TO] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(&sp, "exportTo");
        pt__cfg_is_seq(cx, f[SE_EXPORT_TO], &p);
    }
    if (f[SE_LOCATION] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(&sp, "location");
        const char *s;
        if (pt__cfg_str(cx, f[SE_LOCATION], &p, &s) && strcmp(s, "MESH_EXTERNAL") != 0 &&
            strcmp(s, "MESH_INTERNAL") != 0)
            pt__cfg_error(cx, f[SE_LOCATION], &p,
                          "unknown location \"%s\" (expected MESH_EXTERNAL or MESH_INTERNAL)", s);
    }

    /* resolution: Istio's default is NONE (pass through to the address the client asked
     * for), which needs traffic capture: not supported yet, and neither is DNS. */
    pt_cfg_path_t rp = PT_PATH_KEY(&sp, "resolution");
    bool is_static = false;
    if (f[SE_RESOLUTION] == NULL) {
        pt__cfg_warn(cx, spec, &rp,
                     "resolution NONE (the default) is not enforced by Petrel yet: this "
                     "ServiceEntry has no endpoints (use STATIC)");
    } else {
        const char *s;
        if (pt__cfg_str(cx, f[SE_RESOLUTION], &rp, &s) && strcmp(s, "STATIC") == 0) {
            is_static = true;
        } else if (f[SE_RESOLUTION]->type == PT_CFG_SCALAR) {
            if (!strcmp(s, "NONE") || !strcmp(s, "DNS") || !strcmp(s, "DNS_ROUND_ROBIN"))
                pt__cfg_warn(cx, f[SE_RESOLUTION], &rp,
                             "resolution %s is not enforced by Petrel yet: this ServiceEntry has "
                             "no endpoints (use STATIC)",
                             s);
            else
                pt__cfg_error(cx, f[SE_RESOLUTION], &rp,
                              "unknown resolution \"%s\" (expected NONE, STATIC, DNS or "
                              "DNS_ROUND_ROBIN)",
                              s);
        }
    }

    if (f[SE_PORTS] != NULL) {
        pt_cfg_path_t pp = PT_PATH_KEY(&sp, "ports");
        const pt_cfg_node_t *pn = f[SE_PORTS];
        if (pt__cfg_is_seq(cx, pn, &pp) && pn->n_items > 0) {
            se->ports = pt_arena_calloc(cx->tmp, pn->n_items * sizeof(*se->ports));
            for (size_t i = 0; i < pn->n_items; i++) {
                pt_cfg_path_t ip = PT_PATH_IDX(&pp, i);
                const pt_cfg_node_t *pf[SP__N];
                if (!MAP(cx, pn->items[i], &ip, se_port_fields, pf))
                    continue;
                pt_res_se_port_t port = {0};
                long long v;
                pt_cfg_path_t np = PT_PATH_KEY(&ip, "number");
                if (pf[SP_NUMBER] == NULL)
                    pt__cfg_error(cx, pn->items[i], &np, "required");
                else if (pt__cfg_int(cx, pf[SP_NUMBER], &np, 1, 65535, &v))
                    port.number = (uint16_t)v;
                if (pf[SP_TARGET] != NULL) {
                    pt_cfg_path_t tp = PT_PATH_KEY(&ip, "targetPort");
                    if (pt__cfg_int(cx, pf[SP_TARGET], &tp, 1, 65535, &v))
                        port.target_port = (uint16_t)v;
                }
                if (pf[SP_NAME] != NULL) {
                    pt_cfg_path_t tp = PT_PATH_KEY(&ip, "name");
                    pt__cfg_str(cx, pf[SP_NAME], &tp, &port.name);
                }
                if (pf[SP_PROTOCOL] != NULL) {
                    pt_cfg_path_t tp = PT_PATH_KEY(&ip, "protocol");
                    const char *s;
                    pt__cfg_str(cx, pf[SP_PROTOCOL], &tp, &s);
                }
                if (port.number == 0)
                    continue;
                bool dup = false;
                for (size_t j = 0; j < se->n_ports; j++)
                    if (se->ports[j].number == port.number ||
                        (port.name && se->ports[j].name && !strcmp(port.name, se->ports[j].name)))
                        dup = true;
                if (dup) {
                    pt__cfg_error(cx, pn->items[i], &ip, "duplicate port number or name");
                    continue;
                }
                se->ports[se->n_ports++] = port;
            }
        }
    }

    if (f[SE_ENDPOINTS] != NULL) {
        pt_cfg_path_t ep = PT_PATH_KEY(&sp, "endpoints");
        const pt_cfg_node_t *en = f[SE_ENDPOINTS];
        if (pt__cfg_is_seq(cx, en, &ep) && en->n_items > 0) {
            se->endpoints = pt_arena_calloc(cx->tmp, en->n_items * sizeof(*se->endpoints));
            for (size_t i = 0; i < en->n_items; i++) {
                pt_cfg_path_t ip = PT_PATH_IDX(&ep, i);
                const pt_cfg_node_t *wf[WE__N];
                if (!MAP(cx, en->items[i], &ip, endpoint_fields, wf))
                    continue;
                pt_res_se_endpoint_t e = {.weight = 1};
                bool ok = true;
                pt_cfg_path_t ap = PT_PATH_KEY(&ip, "address");
                if (wf[WE_ADDRESS] == NULL) {
                    pt__cfg_error(cx, en->items[i], &ap, "required");
                    ok = false;
                } else if (!pt__cfg_nonempty_str(cx, wf[WE_ADDRESS], &ap, &e.address)) {
                    ok = false;
                } else if (strncmp(e.address, "unix://", 7) == 0) {
                    pt__cfg_warn(cx, wf[WE_ADDRESS], &ap,
                                 "unix domain socket endpoints are not enforced by Petrel yet: "
                                 "endpoint ignored");
                    ok = false;
                } else if (!is_static) {
                    ok = false; /* a DNS name or an address: no endpoints (warned above) */
                } else if (!is_ip_literal(e.address, &e.addr, &e.addr_len)) {
                    pt__cfg_error(cx, wf[WE_ADDRESS], &ap,
                                  "must be an IPv4 or IPv6 address with resolution STATIC, got "
                                  "\"%s\"",
                                  e.address);
                    ok = false;
                }
                if (wf[WE_PORTS] != NULL) {
                    pt_cfg_path_t pp = PT_PATH_KEY(&ip, "ports");
                    const pt_cfg_node_t *m = wf[WE_PORTS];
                    if (pt__cfg_is_map(cx, m, &pp)) {
                        for (size_t j = 0; j < m->n_pairs; j++) {
                            pt_cfg_path_t kp = PT_PATH_KEY(&pp, m->pairs[j].key->str);
                            long long v;
                            if (!pt__cfg_int(cx, m->pairs[j].value, &kp, 1, 65535, &v))
                                ok = false;
                        }
                        e.ports = m;
                    }
                }
                if (wf[WE_WEIGHT] != NULL) {
                    pt_cfg_path_t wp = PT_PATH_KEY(&ip, "weight");
                    long long v;
                    if (pt__cfg_int(cx, wf[WE_WEIGHT], &wp, 0, 4294967295LL, &v) && v > 0)
                        e.weight = (uint32_t)v;
                }
                if (wf[WE_LABELS] != NULL) {
                    pt_cfg_path_t lp = PT_PATH_KEY(&ip, "labels");
                    e.labels = read_labels(cx, wf[WE_LABELS], &lp, &e.n_labels);
                }
                if (ok)
                    se->endpoints[se->n_endpoints++] = e;
            }
        }
    }
}

/* ---- DestinationRule ------------------------------------------------------------------ */

/* A map of string labels, as key, value pairs in the snapshot arena. */
static const char **read_labels(pt_cfg_cx_t *cx, const pt_cfg_node_t *n, const pt_cfg_path_t *path,
                                size_t *out_n)
{
    *out_n = 0;
    if (!pt__cfg_string_map(cx, n, path) || n->n_pairs == 0)
        return NULL;
    const char **kv = pt_arena_calloc(cx->out, 2 * n->n_pairs * sizeof(*kv));
    for (size_t i = 0; i < n->n_pairs; i++) {
        const pt_cfg_node_t *v = n->pairs[i].value;
        kv[2 * *out_n] = pt__cfg_out_str(cx, n->pairs[i].key->str);
        kv[2 * *out_n + 1] = pt__cfg_out_str(cx, v->type == PT_CFG_NULL ? "" : v->str);
        (*out_n)++;
    }
    return kv;
}

static bool read_bool(pt_cfg_cx_t *cx, const pt_cfg_node_t *n, const pt_cfg_path_t *path, bool *out)
{
    if (n->type == PT_CFG_SCALAR && !n->is_quoted &&
        (strcmp(n->str, "true") == 0 || strcmp(n->str, "false") == 0)) {
        *out = n->str[0] == 't';
        return true;
    }
    pt__cfg_error(cx, n, path, "must be true or false");
    return false;
}

static bool is_prime(uint64_t n)
{
    if (n < 2)
        return false;
    for (uint64_t d = 2; d * d <= n; d++)
        if (n % d == 0)
            return false;
    return true;
}

/* DNS-1123 label, as Istio requires of subset names. */
static bool is_dns_label(const char *s)
{
    size_t len = strlen(s);
    if (len == 0 || len > 63 || s[0] == '-' || s[len - 1] == '-')
        return false;
    for (size_t i = 0; i < len; i++)
        if (!(islower((unsigned char)s[i]) || isdigit((unsigned char)s[i]) || s[i] == '-'))
            return false;
    return true;
}

static void read_consistent_hash(pt_cfg_cx_t *cx, const pt_cfg_node_t *n, const pt_cfg_path_t *path,
                                 pt_lb_config_t *lb, bool *ok)
{
    const pt_cfg_node_t *f[CH__N];
    if (!MAP(cx, n, path, consistent_hash_fields, f)) {
        *ok = false;
        return;
    }
    lb->policy = PT_LB_RING_HASH;
    size_t keys = 0;
    if (f[CH_HEADER] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(path, "httpHeaderName");
        const char *s;
        keys++;
        if (pt__cfg_nonempty_str(cx, f[CH_HEADER], &p, &s)) {
            bool valid = true;
            for (const char *c = s; *c && valid; c++)
                valid = is_token_char((unsigned char)*c);
            if (!valid) {
                pt__cfg_error(cx, f[CH_HEADER], &p, "not a valid header name");
                *ok = false;
            }
            lb->hash_key = PT_LB_HASH_HEADER;
            lb->hash_name = pt__cfg_out_lower(cx, s);
            lb->hash_name_len = strlen(s);
        } else {
            *ok = false;
        }
    }
    if (f[CH_COOKIE] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(path, "httpCookie");
        const pt_cfg_node_t *cf[CK__N];
        keys++;
        if (MAP(cx, f[CH_COOKIE], &p, cookie_fields, cf)) {
            pt_cfg_path_t np = PT_PATH_KEY(&p, "name");
            const char *s;
            if (cf[CK_NAME] == NULL) {
                pt__cfg_error(cx, f[CH_COOKIE], &np, "required");
                *ok = false;
            } else if (pt__cfg_nonempty_str(cx, cf[CK_NAME], &np, &s)) {
                lb->hash_key = PT_LB_HASH_COOKIE;
                lb->hash_name = pt__cfg_out_str(cx, s);
                lb->hash_name_len = strlen(s);
            } else {
                *ok = false;
            }
            if (cf[CK_PATH] != NULL) {
                pt_cfg_path_t pp = PT_PATH_KEY(&p, "path");
                pt__cfg_str(cx, cf[CK_PATH], &pp, &s);
            }
        } else {
            *ok = false;
        }
    }
    if (f[CH_SOURCE_IP] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(path, "useSourceIp");
        bool b = false;
        if (!read_bool(cx, f[CH_SOURCE_IP], &p, &b))
            *ok = false;
        if (b) {
            keys++;
            lb->hash_key = PT_LB_HASH_SOURCE_IP;
        }
    }
    if (f[CH_QUERY] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(path, "httpQueryParameterName");
        const char *s;
        keys++;
        if (pt__cfg_nonempty_str(cx, f[CH_QUERY], &p, &s)) {
            lb->hash_key = PT_LB_HASH_QUERY;
            lb->hash_name = pt__cfg_out_str(cx, s);
            lb->hash_name_len = strlen(s);
        } else {
            *ok = false;
        }
    }
    if (keys == 0 && *ok) {
        pt__cfg_error(cx, n, path,
                      "needs one of httpHeaderName, httpCookie, useSourceIp or "
                      "httpQueryParameterName");
        *ok = false;
    } else if (keys > 1) {
        pt__cfg_error(cx, n, path,
                      "give only one of httpHeaderName, httpCookie, useSourceIp or "
                      "httpQueryParameterName");
        *ok = false;
    }

    long long v;
    int algos = (f[CH_RING] != NULL) + (f[CH_MAGLEV] != NULL) + (f[CH_MIN_RING] != NULL);
    if (algos > 1) {
        pt__cfg_error(cx, n, path, "give only one of ringHash, maglev or minimumRingSize");
        *ok = false;
    }
    if (f[CH_MIN_RING] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(path, "minimumRingSize");
        if (pt__cfg_int(cx, f[CH_MIN_RING], &p, 0, 8388608, &v))
            lb->min_ring_size = (uint64_t)v;
        else
            *ok = false;
    }
    if (f[CH_RING] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(path, "ringHash");
        const pt_cfg_node_t *rf[RH__N];
        if (MAP(cx, f[CH_RING], &p, ring_hash_fields, rf) && rf[RH_MIN] != NULL) {
            pt_cfg_path_t mp = PT_PATH_KEY(&p, "minimumRingSize");
            if (pt__cfg_int(cx, rf[RH_MIN], &mp, 0, 8388608, &v))
                lb->min_ring_size = (uint64_t)v;
            else
                *ok = false;
        }
    }
    if (f[CH_MAGLEV] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(path, "maglev");
        const pt_cfg_node_t *mf[MG__N];
        lb->policy = PT_LB_MAGLEV;
        if (MAP(cx, f[CH_MAGLEV], &p, maglev_fields, mf) && mf[MG_TABLE] != NULL) {
            pt_cfg_path_t tp = PT_PATH_KEY(&p, "tableSize");
            if (!pt__cfg_int(cx, mf[MG_TABLE], &tp, 0, 5000011, &v)) {
                *ok = false;
            } else if (v != 0 && !is_prime((uint64_t)v)) {
                pt__cfg_error(cx, mf[MG_TABLE], &tp, "must be a prime number, got %lld", v);
                *ok = false;
            } else {
                lb->maglev_table_size = (uint64_t)v;
            }
        }
    }
}

/* loadBalancer: exactly one of simple or consistentHash. */
static void read_load_balancer(pt_cfg_cx_t *cx, const pt_cfg_node_t *n, const pt_cfg_path_t *path,
                               pt_res_lb_t *out)
{
    const pt_cfg_node_t *f[LB__N];
    memset(out, 0, sizeof(*out));
    if (!MAP(cx, n, path, lb_fields, f))
        return;
    bool ok = true;
    if (f[LB_SIMPLE] != NULL && f[LB_CONSISTENT_HASH] != NULL) {
        pt__cfg_error(cx, n, path, "give only one of simple or consistentHash");
        return;
    }
    if (f[LB_SIMPLE] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(path, "simple");
        const char *s;
        if (!pt__cfg_str(cx, f[LB_SIMPLE], &p, &s))
            return;
        if (!strcmp(s, "UNSPECIFIED") || !strcmp(s, "ROUND_ROBIN"))
            out->lb.policy = PT_LB_ROUND_ROBIN;
        else if (!strcmp(s, "LEAST_REQUEST") || !strcmp(s, "LEAST_CONN"))
            out->lb.policy = PT_LB_LEAST_REQUEST; /* LEAST_CONN: Istio's deprecated alias */
        else if (!strcmp(s, "RANDOM"))
            out->lb.policy = PT_LB_RANDOM;
        else if (!strcmp(s, "PASSTHROUGH")) {
            pt__cfg_warn(cx, f[LB_SIMPLE], &p,
                         "PASSTHROUGH is not enforced by Petrel yet (it needs traffic capture): "
                         "ROUND_ROBIN is used");
            out->lb.policy = PT_LB_ROUND_ROBIN;
        } else {
            pt__cfg_error(cx, f[LB_SIMPLE], &p,
                          "unknown load balancer \"%s\" (expected UNSPECIFIED, ROUND_ROBIN, "
                          "LEAST_REQUEST, RANDOM or PASSTHROUGH)",
                          s);
            ok = false;
        }
    }
    if (f[LB_CONSISTENT_HASH] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(path, "consistentHash");
        read_consistent_hash(cx, f[LB_CONSISTENT_HASH], &p, &out->lb, &ok);
    }
    out->is_set = ok;
}

static void read_traffic_policy(pt_cfg_cx_t *cx, const pt_cfg_node_t *n, const pt_cfg_path_t *path,
                                pt_res_traffic_policy_t *tp)
{
    const pt_cfg_node_t *f[TP__N];
    if (!MAP(cx, n, path, traffic_policy_fields, f))
        return;
    if (f[TP_LB] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(path, "loadBalancer");
        read_load_balancer(cx, f[TP_LB], &p, &tp->lb);
    }
    if (f[TP_PORT_LEVEL] == NULL)
        return;
    pt_cfg_path_t pp = PT_PATH_KEY(path, "portLevelSettings");
    const pt_cfg_node_t *pl = f[TP_PORT_LEVEL];
    if (!pt__cfg_is_seq(cx, pl, &pp) || pl->n_items == 0)
        return;
    tp->ports = pt_arena_calloc(cx->tmp, pl->n_items * sizeof(*tp->ports));
    for (size_t i = 0; i < pl->n_items; i++) {
        pt_cfg_path_t ip = PT_PATH_IDX(&pp, i);
        const pt_cfg_node_t *pf[PLS__N];
        if (!MAP(cx, pl->items[i], &ip, port_policy_fields, pf))
            continue;
        pt_res_port_lb_t pls = {0};
        pt_cfg_path_t portp = PT_PATH_KEY(&ip, "port");
        if (pf[PLS_PORT] == NULL) {
            pt__cfg_error(cx, pl->items[i], &portp, "required");
            continue;
        }
        const pt_cfg_node_t *sf[PS__N];
        if (!MAP(cx, pf[PLS_PORT], &portp, port_selector_fields, sf))
            continue;
        pt_cfg_path_t np = PT_PATH_KEY(&portp, "number");
        long long v;
        if (sf[PS_NUMBER] == NULL) {
            pt__cfg_error(cx, pf[PLS_PORT], &np, "required");
            continue;
        }
        if (!pt__cfg_int(cx, sf[PS_NUMBER], &np, 1, 65535, &v))
            continue;
        pls.port = (uint16_t)v;
        bool dup = false;
        for (size_t j = 0; j < tp->n_ports; j++)
            dup = dup || tp->ports[j].port == pls.port;
        if (dup) {
            pt__cfg_error(cx, sf[PS_NUMBER], &np, "port %u has settings already", (unsigned)v);
            continue;
        }
        if (pf[PLS_LB] != NULL) {
            pt_cfg_path_t lp = PT_PATH_KEY(&ip, "loadBalancer");
            read_load_balancer(cx, pf[PLS_LB], &lp, &pls.lb);
        }
        tp->ports[tp->n_ports++] = pls;
    }
}

static void read_destination_rule(pt_cfg_cx_t *cx, pt_res_set_t *set, const pt_res_meta_t *meta,
                                  const pt_cfg_node_t *spec)
{
    pt_res_dr_t *dr = pt_arena_calloc(cx->tmp, sizeof(*dr));
    dr->meta = *meta;
    PUSH(cx, set->drs, set->n_drs, set->cap_drs, dr);

    pt_cfg_path_t sp = PT_PATH_KEY(NULL, "spec");
    const pt_cfg_node_t *f[DRF__N];
    if (!MAP(cx, spec, &sp, dr_fields, f))
        return;
    pt_cfg_path_t hp = PT_PATH_KEY(&sp, "host");
    const char *host;
    if (f[DRF_HOST] == NULL) {
        pt__cfg_error(cx, spec, &hp, "required");
    } else if (pt__cfg_nonempty_str(cx, f[DRF_HOST], &hp, &host)) {
        const char *why = pt__cfg_host_problem(host);
        if (why != NULL)
            pt__cfg_error(cx, f[DRF_HOST], &hp, "invalid host \"%s\": %s", host, why);
        else
            dr->host = pt__cfg_out_lower(cx, host);
    }
    if (f[DRF_EXPORT_TO] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(&sp, "exportTo");
        pt__cfg_is_seq(cx, f[DRF_EXPORT_TO], &p);
    }
    if (f[DRF_TRAFFIC_POLICY] != NULL) {
        pt_cfg_path_t p = PT_PATH_KEY(&sp, "trafficPolicy");
        read_traffic_policy(cx, f[DRF_TRAFFIC_POLICY], &p, &dr->policy);
    }
    if (f[DRF_SUBSETS] == NULL)
        return;
    pt_cfg_path_t ssp = PT_PATH_KEY(&sp, "subsets");
    const pt_cfg_node_t *ss = f[DRF_SUBSETS];
    if (!pt__cfg_is_seq(cx, ss, &ssp) || ss->n_items == 0)
        return;
    dr->subsets = pt_arena_calloc(cx->tmp, ss->n_items * sizeof(*dr->subsets));
    for (size_t i = 0; i < ss->n_items; i++) {
        pt_cfg_path_t ip = PT_PATH_IDX(&ssp, i);
        const pt_cfg_node_t *sf[SUB__N];
        if (!MAP(cx, ss->items[i], &ip, subset_fields, sf))
            continue;
        pt_res_subset_t sub = {0};
        pt_cfg_path_t np = PT_PATH_KEY(&ip, "name");
        const char *name;
        if (sf[SUB_NAME] == NULL) {
            pt__cfg_error(cx, ss->items[i], &np, "required");
            continue;
        }
        if (!pt__cfg_nonempty_str(cx, sf[SUB_NAME], &np, &name))
            continue;
        if (!is_dns_label(name)) {
            pt__cfg_error(cx, sf[SUB_NAME], &np,
                          "invalid subset name \"%s\": must be a DNS label (lower-case letters, "
                          "digits and '-', at most 63)",
                          name);
            continue;
        }
        bool dup = false;
        for (size_t j = 0; j < dr->n_subsets; j++)
            dup = dup || strcmp(dr->subsets[j].name, name) == 0;
        if (dup) {
            pt__cfg_error(cx, sf[SUB_NAME], &np, "duplicate subset \"%s\"", name);
            continue;
        }
        sub.name = pt__cfg_out_str(cx, name);
        if (sf[SUB_LABELS] != NULL) {
            pt_cfg_path_t lp = PT_PATH_KEY(&ip, "labels");
            sub.labels = read_labels(cx, sf[SUB_LABELS], &lp, &sub.n_labels);
        }
        if (sf[SUB_TRAFFIC_POLICY] != NULL) {
            pt_cfg_path_t tp = PT_PATH_KEY(&ip, "trafficPolicy");
            read_traffic_policy(cx, sf[SUB_TRAFFIC_POLICY], &tp, &sub.policy);
        }
        dr->subsets[dr->n_subsets++] = sub;
    }
}

/* ---- documents ------------------------------------------------------------------------ */

typedef void (*reader_fn)(pt_cfg_cx_t *cx, pt_res_set_t *set, const pt_res_meta_t *meta,
                          const pt_cfg_node_t *spec);

static const char *const istio_networking_versions[] = {
    "networking.istio.io/v1", "networking.istio.io/v1beta1", "networking.istio.io/v1alpha3", NULL};
static const char *const petrel_versions[] = {"petrel.io/v1alpha1", NULL};
static const char *const istio_security_versions[] = {"security.istio.io/v1",
                                                      "security.istio.io/v1beta1", NULL};
static const char *const istio_telemetry_versions[] = {"telemetry.istio.io/v1",
                                                       "telemetry.istio.io/v1alpha1", NULL};
static const char *const istio_extensions_versions[] = {"extensions.istio.io/v1alpha1", NULL};

/* ---- kinds Petrel parses but does not enforce yet --------------------------------------- */

/* Their spec's top-level fields, as Istio names them: a typo there is an error; what is
 * inside is not validated in depth (docs/config.md says so). */
static const pt_cfg_field_t peer_mtls_fields[] = {{"mode", A, PT_SHAPE_SCALAR, NULL, 0}};
enum { PA_SELECTOR, PA_MTLS, PA_PORT_MTLS, PA__N };
static const pt_cfg_field_t peer_authn_fields[PA__N] = {
    [PA_SELECTOR] = {"selector", A, PT_SHAPE_MAP, SUB(match_selector_fields)},
    [PA_MTLS] = {"mtls", A, PT_SHAPE_MAP, SUB(peer_mtls_fields)},
    [PA_PORT_MTLS] = {"portLevelMtls", A, PT_SHAPE_MAP, NULL, 0},
};
static const pt_cfg_field_t authz_fields[] = {
    {"selector", A, PT_SHAPE_MAP, SUB(match_selector_fields)},
    {"targetRef", A, PT_SHAPE_MAP, NULL, 0},
    {"targetRefs", A, PT_SHAPE_SEQ, NULL, 0},
    {"rules", A, PT_SHAPE_SEQ, NULL, 0},
    {"action", A, PT_SHAPE_SCALAR, NULL, 0},
    {"provider", A, PT_SHAPE_MAP, NULL, 0},
};
static const pt_cfg_field_t request_authn_fields[] = {
    {"selector", A, PT_SHAPE_MAP, SUB(match_selector_fields)},
    {"targetRef", A, PT_SHAPE_MAP, NULL, 0},
    {"targetRefs", A, PT_SHAPE_SEQ, NULL, 0},
    {"jwtRules", A, PT_SHAPE_SEQ, NULL, 0},
};
static const pt_cfg_field_t sidecar_fields[] = {
    {"workloadSelector", A, PT_SHAPE_MAP, SUB(selector_fields)},
    {"ingress", A, PT_SHAPE_SEQ, NULL, 0},
    {"egress", A, PT_SHAPE_SEQ, NULL, 0},
    {"outboundTrafficPolicy", A, PT_SHAPE_MAP, NULL, 0},
    {"inboundConnectionPool", A, PT_SHAPE_MAP, NULL, 0},
};
static const pt_cfg_field_t workload_entry_fields[] = {
    {"address", A, PT_SHAPE_SCALAR, NULL, 0},
    {"ports", A, PT_SHAPE_MAP, NULL, 0},
    {"labels", A, PT_SHAPE_MAP, NULL, 0},
    {"network", A, PT_SHAPE_SCALAR, NULL, 0},
    {"locality", A, PT_SHAPE_SCALAR, NULL, 0},
    {"weight", A, PT_SHAPE_SCALAR, NULL, 0},
    {"serviceAccount", A, PT_SHAPE_SCALAR, NULL, 0},
};
static const pt_cfg_field_t workload_group_fields[] = {
    {"metadata", A, PT_SHAPE_MAP, NULL, 0},
    {"template", A, PT_SHAPE_MAP, NULL, 0},
    {"probe", A, PT_SHAPE_MAP, NULL, 0},
};
static const pt_cfg_field_t envoy_filter_fields[] = {
    {"workloadSelector", A, PT_SHAPE_MAP, SUB(selector_fields)},
    {"targetRefs", A, PT_SHAPE_SEQ, NULL, 0},
    {"configPatches", A, PT_SHAPE_SEQ, NULL, 0},
    {"priority", A, PT_SHAPE_SCALAR, NULL, 0},
};
static const pt_cfg_field_t proxy_config_fields[] = {
    {"selector", A, PT_SHAPE_MAP, SUB(match_selector_fields)},
    {"concurrency", A, PT_SHAPE_SCALAR, NULL, 0},
    {"environmentVariables", A, PT_SHAPE_MAP, NULL, 0},
    {"image", A, PT_SHAPE_MAP, NULL, 0},
};
static const pt_cfg_field_t telemetry_fields[] = {
    {"selector", A, PT_SHAPE_MAP, SUB(match_selector_fields)},
    {"targetRef", A, PT_SHAPE_MAP, NULL, 0},
    {"targetRefs", A, PT_SHAPE_SEQ, NULL, 0},
    {"tracing", A, PT_SHAPE_SEQ, NULL, 0},
    {"metrics", A, PT_SHAPE_SEQ, NULL, 0},
    {"accessLogging", A, PT_SHAPE_SEQ, NULL, 0},
};
static const pt_cfg_field_t wasm_plugin_fields[] = {
    {"selector", A, PT_SHAPE_MAP, SUB(match_selector_fields)},
    {"targetRef", A, PT_SHAPE_MAP, NULL, 0},
    {"targetRefs", A, PT_SHAPE_SEQ, NULL, 0},
    {"url", A, PT_SHAPE_SCALAR, NULL, 0},
    {"sha256", A, PT_SHAPE_SCALAR, NULL, 0},
    {"imagePullPolicy", A, PT_SHAPE_SCALAR, NULL, 0},
    {"imagePullSecret", A, PT_SHAPE_SCALAR, NULL, 0},
    {"pluginConfig", A, PT_SHAPE_MAP, NULL, 0},
    {"pluginName", A, PT_SHAPE_SCALAR, NULL, 0},
    {"phase", A, PT_SHAPE_SCALAR, NULL, 0},
    {"priority", A, PT_SHAPE_SCALAR, NULL, 0},
    {"vmConfig", A, PT_SHAPE_MAP, NULL, 0},
    {"match", A, PT_SHAPE_SEQ, NULL, 0},
    {"verificationKey", A, PT_SHAPE_SCALAR, NULL, 0},
    {"failStrategy", A, PT_SHAPE_SCALAR, NULL, 0},
    {"type", A, PT_SHAPE_SCALAR, NULL, 0},
};

static const struct {
    const char *kind;
    const pt_cfg_field_t *fields;
    size_t n_fields;
} unenforced_kinds[] = {
    {"PeerAuthentication", SUB(peer_authn_fields)},
    {"AuthorizationPolicy", SUB(authz_fields)},
    {"RequestAuthentication", SUB(request_authn_fields)},
    {"Sidecar", SUB(sidecar_fields)},
    {"WorkloadEntry", SUB(workload_entry_fields)},
    {"WorkloadGroup", SUB(workload_group_fields)},
    {"EnvoyFilter", SUB(envoy_filter_fields)},
    {"ProxyConfig", SUB(proxy_config_fields)},
    {"Telemetry", SUB(telemetry_fields)},
    {"WasmPlugin", SUB(wasm_plugin_fields)},
};

/* mode of a PeerAuthentication MutualTLS map is STRICT. */
static bool is_strict(const pt_cfg_node_t *mtls)
{
    if (mtls == NULL || mtls->type != PT_CFG_MAP)
        return false;
    for (size_t i = 0; i < mtls->n_pairs; i++)
        if (strcmp(mtls->pairs[i].key->str, "mode") == 0 &&
            mtls->pairs[i].value->type == PT_CFG_SCALAR &&
            strcmp(mtls->pairs[i].value->str, "STRICT") == 0)
            return true;
    return false;
}

/* A kind of Istio's API that Petrel does not enforce yet: its spec is checked against the
 * kind's top-level fields, then the resource is dropped with a warning. Security policies
 * (every AuthorizationPolicy and RequestAuthentication, a PeerAuthentication with a STRICT
 * mode anywhere) would leave the proxy open if dropped: `petrel run` refuses them (an error
 * when errors->refuse_unenforced_security), `petrel validate` warns that run will. */
static void read_unenforced(pt_cfg_cx_t *cx, const pt_res_meta_t *meta, const pt_cfg_node_t *kind,
                            const pt_cfg_node_t *spec)
{
    size_t k = 0;
    while (strcmp(unenforced_kinds[k].kind, meta->kind) != 0)
        k++;
    pt_cfg_path_t sp = PT_PATH_KEY(NULL, "spec");
    pt_cfg_path_t kp = PT_PATH_KEY(NULL, "kind");
    const pt_cfg_node_t *f[32];
    bool security = false;
    if (spec != NULL &&
        pt__cfg_map(cx, spec, &sp, unenforced_kinds[k].fields, unenforced_kinds[k].n_fields, f) &&
        strcmp(meta->kind, "PeerAuthentication") == 0) {
        security = is_strict(f[PA_MTLS]);
        /* portLevelMtls: port number -> MutualTLS */
        pt_cfg_path_t pp = PT_PATH_KEY(&sp, "portLevelMtls");
        const pt_cfg_node_t *pl = f[PA_PORT_MTLS];
        for (size_t i = 0; pl != NULL && i < pl->n_pairs; i++) {
            pt_cfg_path_t ip = PT_PATH_KEY(&pp, pl->pairs[i].key->str);
            const pt_cfg_node_t *v[NF(peer_mtls_fields)];
            if (pl->pairs[i].value->type != PT_CFG_NULL &&
                MAP(cx, pl->pairs[i].value, &ip, peer_mtls_fields, v) &&
                is_strict(pl->pairs[i].value))
                security = true;
        }
    }
    if (strcmp(meta->kind, "AuthorizationPolicy") == 0 ||
        strcmp(meta->kind, "RequestAuthentication") == 0)
        security = true;
    if (!security)
        pt__cfg_warn(cx, kind, &kp, "%s %s/%s is not enforced by Petrel yet: ignored", meta->kind,
                     meta->ns, meta->name);
    else if (cx->errors->refuse_unenforced_security)
        pt__cfg_error(cx, kind, &kp,
                      "%s %s/%s cannot be enforced by Petrel yet: refusing to run open", meta->kind,
                      meta->ns, meta->name);
    else
        pt__cfg_warn(cx, kind, &kp,
                     "%s %s/%s is not enforced by Petrel yet: `petrel run` refuses this config "
                     "rather than run open",
                     meta->kind, meta->ns, meta->name);
}

static const struct {
    const char *kind;
    const char *const *versions;
    reader_fn read;
    bool spec_optional;
} kinds[] = {
    {"Proxy", petrel_versions, read_proxy, true},
    {"Gateway", istio_networking_versions, read_gateway, false},
    {"VirtualService", istio_networking_versions, read_virtual_service, false},
    {"ServiceEntry", istio_networking_versions, read_service_entry, false},
    {"DestinationRule", istio_networking_versions, read_destination_rule, false},
};

/* Istio kinds Petrel knows of and does not enforce yet (read_unenforced), with the API
 * versions Istio serves them under. */
static const struct {
    const char *kind;
    const char *const *versions;
} later_kinds[] = {
    {"PeerAuthentication", istio_security_versions},
    {"AuthorizationPolicy", istio_security_versions},
    {"RequestAuthentication", istio_security_versions},
    {"Sidecar", istio_networking_versions},
    {"WorkloadEntry", istio_networking_versions},
    {"WorkloadGroup", istio_networking_versions},
    {"EnvoyFilter", istio_networking_versions},
    {"ProxyConfig", istio_networking_versions},
    {"Telemetry", istio_telemetry_versions},
    {"WasmPlugin", istio_extensions_versions},
};

static void check_api_version(pt_cfg_cx_t *cx, const pt_cfg_node_t *root, const pt_cfg_node_t *n,
                              const char *kind, const char *const *versions)
{
    pt_cfg_path_t ap = PT_PATH_KEY(NULL, "apiVersion");
    const char *api;
    if (n == NULL) {
        pt__cfg_error(cx, root, &ap, "required");
    } else if (pt__cfg_nonempty_str(cx, n, &ap, &api)) {
        const char *const *v = versions;
        while (*v != NULL && strcmp(*v, api) != 0)
            v++;
        if (*v == NULL) {
            char expected[256] = "";
            for (v = versions; *v != NULL; v++) {
                strncat(expected, *v, sizeof(expected) - strlen(expected) - 1);
                if (v[1] != NULL)
                    strncat(expected, ", ", sizeof(expected) - strlen(expected) - 1);
            }
            pt__cfg_error(cx, n, &ap, "unknown apiVersion \"%s\" for kind %s (expected %s)", api,
                          kind, expected);
        }
    }
}

void pt__cfg_resources_add(pt_cfg_cx_t *cx, pt_res_set_t *set, const pt_cfg_doc_t *doc)
{
    const pt_cfg_node_t *root = doc->root;
    const pt_cfg_node_t *f[DOC__N];
    if (root->type != PT_CFG_MAP) {
        pt__cfg_error(cx, root, NULL,
                      "a document must be a map (apiVersion, kind, metadata, spec)");
        return;
    }
    MAP(cx, root, NULL, doc_fields, f);

    pt_cfg_path_t kp = PT_PATH_KEY(NULL, "kind");
    const char *kind;
    if (f[DOC_KIND] == NULL) {
        pt__cfg_error(cx, root, &kp, "required");
        return;
    }
    if (!pt__cfg_nonempty_str(cx, f[DOC_KIND], &kp, &kind))
        return;
    size_t k = 0;
    while (k < NF(kinds) && strcmp(kinds[k].kind, kind) != 0)
        k++;
    if (k == NF(kinds)) {
        for (size_t i = 0; i < NF(later_kinds); i++)
            if (strcmp(later_kinds[i].kind, kind) == 0) {
                check_api_version(cx, root, f[DOC_API], kind, later_kinds[i].versions);
                pt_res_meta_t meta = {.kind = later_kinds[i].kind, .doc = root};
                if (!read_meta(cx, root, f[DOC_META], &meta))
                    meta.name = "<unnamed>";
                read_unenforced(cx, &meta, f[DOC_KIND], f[DOC_SPEC]);
                return;
            }
        pt__cfg_error(cx, f[DOC_KIND], &kp,
                      "unknown kind \"%s\" (expected Proxy, Gateway, VirtualService, "
                      "ServiceEntry, DestinationRule)",
                      kind);
        return;
    }

    check_api_version(cx, root, f[DOC_API], kind, kinds[k].versions);

    pt_res_meta_t meta = {.kind = kinds[k].kind, .doc = root};
    bool meta_ok = read_meta(cx, root, f[DOC_META], &meta);
    const pt_cfg_node_t *spec = f[DOC_SPEC];
    if (spec == NULL && !kinds[k].spec_optional) {
        pt_cfg_path_t sp = PT_PATH_KEY(NULL, "spec");
        pt__cfg_error(cx, root, &sp, "required");
        return;
    }
    if (!meta_ok)
        meta.name = "<unnamed>";
    kinds[k].read(cx, set, &meta, spec);
}
