/* meta.c: the metadata store on LevelDB (through common/store). */
#include "meta.h"

#include "mem.h"
#include "store.h"

#include <stdio.h>
#include <stdlib.h>

static const char MAP_KEY[] = "cluster-map";

struct sx_meta {
    sx_store *store;
};

sx_status sx_meta_open(const char *dir, sx_meta **out, sx_err *err)
{
    *out = NULL;
    char path[4096];
    snprintf(path, sizeof(path), "%s/meta", dir);
    sx_store_opts o = {.sync = true, .block_cache_bytes = 1u << 20};
    sx_store *s = NULL;
    sx_status st = sx_store_open(path, &o, &s, err);
    if (st != SX_OK)
        return st;
    sx_meta *m = sx_calloc(1, sizeof(*m));
    m->store = s;
    *out = m;
    return SX_OK;
}

void sx_meta_close(sx_meta *m)
{
    if (!m)
        return;
    sx_store_close(m->store);
    free(m);
}

sx_status sx_meta_load(sx_meta *m, Shardex__Internal__V1__ClusterMap **out, sx_err *err)
{
    *out = NULL;
    sx_buf val = {0};
    bool found = false;
    sx_status st = sx_store_get(m->store, NULL, MAP_KEY, sizeof(MAP_KEY) - 1, &val, &found, err);
    if (st != SX_OK || !found) {
        sx_buf_free(&val);
        return st;
    }
    *out = shardex__internal__v1__cluster_map__unpack(NULL, val.len, val.data);
    sx_buf_free(&val);
    if (!*out)
        return sx_err_set(err, SX_DATA_LOSS, "metadata: the stored cluster map does not decode");
    return SX_OK;
}

sx_status sx_meta_save(sx_meta *m, const void *packed, size_t len, sx_err *err)
{
    return sx_store_put(m->store, MAP_KEY, sizeof(MAP_KEY) - 1, packed, len, SX_SYNC_YES, err);
}
