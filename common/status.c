/* status.c: names and gRPC codes of sx_status, and sx_err helpers. */
#include "status.h"

#include <stdio.h>
#include <string.h>

const char *sx_status_name(sx_status s)
{
    switch (s) {
#define SX__STATUS_NAME(name, code, desc)                                                          \
    case SX_##name:                                                                                \
        return #name;
        SX_STATUS_MAP(SX__STATUS_NAME)
#undef SX__STATUS_NAME
    }
    return "UNKNOWN";
}

int sx_status_grpc_code(sx_status s)
{
    switch (s) {
#define SX__STATUS_CODE(name, code, desc)                                                          \
    case SX_##name:                                                                                \
        return code;
        SX_STATUS_MAP(SX__STATUS_CODE)
#undef SX__STATUS_CODE
    }
    return SX_UNKNOWN;
}

sx_status sx_status_from_grpc_code(int code)
{
    switch (code) {
#define SX__STATUS_FROM(name, c, desc)                                                             \
    case c:                                                                                        \
        return SX_##name;
        SX_STATUS_MAP(SX__STATUS_FROM)
#undef SX__STATUS_FROM
    }
    return SX_UNKNOWN;
}

/* A message cut to fit must not end inside a UTF-8 sequence: gRPC carries it
 * as UTF-8 and other stacks would show a broken character. */
static void trim_partial_utf8(char *msg, size_t len)
{
    size_t i = len, cont = 0;
    while (i > 0 && ((unsigned char)msg[i - 1] & 0xC0) == 0x80 && cont < 3) {
        i--;
        cont++;
    }
    if (i == 0)
        return;
    unsigned char lead = (unsigned char)msg[i - 1];
    size_t need = lead >= 0xF0 ? 3 : lead >= 0xE0 ? 2 : lead >= 0xC0 ? 1 : 0;
    if (lead >= 0xC0 && cont < need)
        msg[i - 1] = '\0';
}

sx_status sx_err_vset(sx_err *err, sx_status code, const char *fmt, va_list ap)
{
    if (err) {
        err->code = code;
        int n = vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
        if (n >= (int)sizeof(err->msg))
            trim_partial_utf8(err->msg, sizeof(err->msg) - 1);
    }
    return code;
}

sx_status sx_err_set(sx_err *err, sx_status code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sx_err_vset(err, code, fmt, ap);
    va_end(ap);
    return code;
}

sx_status sx_err_prefix(sx_err *err, const char *fmt, ...)
{
    if (!err)
        return SX_OK;
    char prefix[SX_ERR_MSG_MAX], old[SX_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof(prefix), fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof(old));
    /* Truncation is intended: the message buffer is fixed. */
    size_t n = strlen(prefix);
    if (n > sizeof(err->msg) - 3)
        n = sizeof(err->msg) - 3;
    memcpy(err->msg, prefix, n);
    memcpy(err->msg + n, ": ", 2);
    n += 2;
    size_t m = strnlen(old, sizeof(old) - 1);
    if (m > sizeof(err->msg) - 1 - n)
        m = sizeof(err->msg) - 1 - n;
    memcpy(err->msg + n, old, m);
    err->msg[n + m] = '\0';
    trim_partial_utf8(err->msg, n + m);
    return err->code;
}

static const char NOT_LEADER[] = "not the leading coordinator; leader=";

sx_status sx_err_not_leader(sx_err *err, const char *leader)
{
    return sx_err_set(err, SX_FAILED_PRECONDITION, "%s%s", NOT_LEADER,
                      leader && leader[0] ? leader : "unknown");
}

bool sx_err_leader_hint(const sx_err *err, char *leader, size_t cap)
{
    if (!err || err->code != SX_FAILED_PRECONDITION)
        return false;
    const char *at = strstr(err->msg, NOT_LEADER); /* a relay may have prefixed it */
    if (!at)
        return false;
    at += sizeof(NOT_LEADER) - 1;
    if (cap)
        snprintf(leader, cap, "%s", strcmp(at, "unknown") == 0 ? "" : at);
    return true;
}

void sx_err_clear(sx_err *err)
{
    if (err) {
        err->code = SX_OK;
        err->msg[0] = '\0';
    }
}
