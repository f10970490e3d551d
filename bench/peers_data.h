/* peers_data.h: bench_peers' data: this machine's Debian package catalogue
 * (`apt-cache dumpavail`, or a file of the same stanzas), parsed once with the
 * project's own deb822 parser (client/load_parse.h, as `shardex load` reads it:
 * the id is Package, Installed-Size an int, values cut at the string limit)
 * and held in memory, so that PostgreSQL and shardex get the same documents:
 * shardex as the parser's Document, PostgreSQL as a JSON object of the same
 * fields (ints as JSON numbers). It also answers, from memory, how many
 * documents each benchmark query must return.
 *
 * Not here: sending anything anywhere. Single-threaded while loading; read-only
 * (any thread) afterwards.
 */
#ifndef SX_PEERS_DATA_H
#define SX_PEERS_DATA_H

#include "mem.h"
#include "shardex/v1/shardex.pb-c.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The fields the benchmark indexes, spelled as the stanzas spell them. */
#define PEERS_F_MAINTAINER "Maintainer"
#define PEERS_F_SECTION "Section"
#define PEERS_F_SIZE "Installed-Size"

/* One package. */
typedef struct peers_doc {
    Shardex__V1__Document *doc; /* as the parser built it (owned) */
    char *json;                 /* the same fields as a JSON object, NUL-terminated (owned) */
    size_t json_len;
    const char *maintainer; /* borrowed from doc; NULL when the stanza has none */
    bool has_size;          /* Installed-Size was present (an int: the parser checked) */
    int64_t size;
} peers_doc;

typedef struct peers_data_opts {
    const char *catalogue;          /* a file of stanzas; NULL: `apt-cache dumpavail` */
    const char *const *only_fields; /* NULL-terminated; NULL: every field */
    size_t max_docs;                /* 0: all; else the first max_docs packages */
} peers_data_opts;

typedef struct peers_data {
    size_t n;
    peers_doc *d;
    /* What the input held besides: */
    uint64_t stanzas;    /* records read */
    uint64_t bad;        /* refused by the parser (reported on stderr), not loaded */
    uint64_t duplicates; /* a Package seen before: the first one is kept */
    uint64_t truncated;  /* values cut to the server's string limit */
    size_t json_bytes;   /* sum of json_len */
    size_t pb_bytes;     /* sum of the packed Documents */
} peers_data;

/* Reads and parses the catalogue into *out (zeroed first). False with why
 * (naming the input) when it cannot be read or holds no package. Caller frees
 * with peers_data_free. */
bool peers_data_load(const peers_data_opts *opts, peers_data *out, char *why, size_t cap);
void peers_data_free(peers_data *d); /* accepts a zeroed one */

/* The values the queries ask for, chosen from the data alone (deterministic). */
typedef struct peers_picks {
    char *hot;        /* the maintainer with the most packages (owned) */
    size_t hot_count; /* its packages */
    char **typical;   /* ntypical maintainers with a handful of packages (owned) */
    size_t *typical_count;
    size_t ntypical;
} peers_picks;

/* Chooses the hottest maintainer and ntypical (>= 1) typical ones: those with
 * PEERS_TYPICAL_MIN..MAX packages, sorted by name, taken at even steps through
 * that list (the middle one when ntypical is 1); fewer when the data has fewer.
 * Free with peers_picks_free. */
#define PEERS_TYPICAL_MIN 4
#define PEERS_TYPICAL_MAX 6
void peers_data_pick(const peers_data *d, size_t ntypical, peers_picks *out);
void peers_picks_free(peers_picks *p);

/* Packages whose Installed-Size is in [lo, hi]. */
size_t peers_data_count_range(const peers_data *d, int64_t lo, int64_t hi);

/* Document number seq of a stream that writes the catalogue again and again:
 * package seq % n, with its own Package as id the first time (seq < n: the
 * catalogue as it is) and "COPY/Package" after, so that every document of the
 * stream is new. Writes the id into id (cap bytes) and returns the package. */
const peers_doc *peers_data_nth(const peers_data *d, uint64_t seq, char *id, size_t cap);

/* What a benchmark query asks and how many hits its answer must have. */
typedef enum peers_qkind {
    PEERS_Q_TYPICAL, /* equality on Maintainer, a typical value (or several, in turn) */
    PEERS_Q_HOT,     /* equality on Maintainer, the hottest value */
    PEERS_Q_RANGE,   /* Installed-Size in [lo, hi] */
    PEERS_NQ,
} peers_qkind;

typedef struct peers_query {
    peers_qkind kind;
    const char *name;       /* for tables and errors: "typical maintainer" */
    size_t nvalues;         /* equality: values asked in turn */
    char *const *values;    /* equality: borrowed (peers_picks) */
    const size_t *expected; /* hits per value (equality), or [0] for the range */
    int64_t lo, hi;         /* range */
} peers_query;

/* Appends s (n bytes of UTF-8) to b as a JSON string, quotes included. */
void peers_json_string(sx_buf *b, const char *s, size_t n);

#endif
