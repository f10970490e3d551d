/* auth.h: who may call what on a daemon that serves with TLS (the
 * authorize callback of its rpc server, rpc.h; docs/security.md).
 *
 * Identities:
 *   node    a certificate whose SPIFFE id (URI SAN) is spiffe://shardex/node/NAME:
 *           workers and coordinators (deploy/certs.sh makes them). A node may
 *           call everything, the internal services included.
 *   client  a certificate with spiffe://shardex/client/ROLE/NAME, or a bearer
 *           token of the tokens file; ROLE is read, write or admin.
 *
 * Roles, each with what the one before it may do:
 *   read   Get, Query, ListIndexes, ClusterStatus
 *   write  Put, Delete
 *   admin  CreateIndex, DropIndex (and any other method of shardex.v1.Shardex)
 *   node   everything: the internal services (replication, shipping, the
 *          coordinator's, worker administration and fault injection)
 * grpc.health.v1.Health is open to anyone, so that load balancers can probe.
 *
 * A call without a certificate or token that needs a role is UNAUTHENTICATED,
 * so is one with an unknown or expired token; one whose identity lacks the
 * role is PERMISSION_DENIED. Both messages name the method and the role.
 *
 * The tokens file: one token a line, `NAME ROLE TOKEN [EXPIRES]`, blanks
 * between, '#' starting a comment; NAME a label for logs, ROLE read, write or
 * admin, TOKEN at least SX_AUTH_TOKEN_MIN printable characters, EXPIRES an
 * UTC time as 2027-01-31T00:00:00Z (none: it does not expire). Tokens are
 * compared in constant time with every entry. sx_auth_reload reads the file
 * again (on SIGHUP): a bad file keeps the table in force.
 */
#ifndef SX_AUTH_H
#define SX_AUTH_H

#include "rpc.h"
#include "status.h"

#include <stddef.h>
#include <stdint.h>

#define SX_AUTH_TOKEN_MIN 16
#define SX_AUTH_TOKEN_MAX 256
#define SX_AUTH_NODE_PREFIX "spiffe://shardex/node/"
#define SX_AUTH_CLIENT_PREFIX "spiffe://shardex/client/"

typedef enum {
    SX_ROLE_NONE = 0,
    SX_ROLE_READ = 1,
    SX_ROLE_WRITE = 2,
    SX_ROLE_ADMIN = 3,
    SX_ROLE_NODE = 4,
} sx_role;

/* "read", "write", "admin", "node", "none". */
const char *sx_role_name(sx_role r);

/* The role a method (full path, e.g. "/shardex.v1.Shardex/Put") needs. */
sx_role sx_auth_method_role(const char *method);

/* The role a certificate's identity grants (SX_ROLE_NONE: none). */
sx_role sx_auth_cert_role(const char *cert_id);

typedef struct sx_auth sx_auth;

/* Reads the tokens file (NULL: no tokens, certificates only). On a bad file
 * SX_INVALID_ARGUMENT naming the file, the line and what is wrong. */
sx_status sx_auth_create(const char *tokens_file, sx_auth **out, sx_err *err);
/* Reads the tokens file again; on an error the table in force stays. */
sx_status sx_auth_reload(sx_auth *a, sx_err *err);
void sx_auth_destroy(sx_auth *a); /* accepts NULL */

/* How many tokens are in force (for logs). */
size_t sx_auth_tokens(sx_auth *a);

/* The decision for one call: an sx_rpc_authorize_cb with an sx_auth as arg. */
sx_status sx_auth_authorize(void *auth, sx_rpc_peer *peer, const char *method, sx_err *err);

/* The same with the wall clock given (milliseconds since the epoch), for tests. */
sx_status sx_auth_decide(sx_auth *a, const sx_rpc_peer *peer, const char *method,
                         uint64_t now_wall_ms, sx_err *err);

/* Parses a tokens file's text into a; `file` names it in errors (the fuzz
 * target and the unit tests). */
sx_status sx_auth_load_text(sx_auth *a, const char *file, const char *text, size_t len,
                            sx_err *err);

#endif
