/* mx_err.c - names and messages for the MX_E* table in mx_err.h. */
#include "mx_err.h"

const char *mx_strerror(int err)
{
    switch (err) {
    case 0:
        return "ok";
#define MX_ERR_MSG(name, msg)                                                                      \
    case MX_E##name:                                                                               \
        return msg;
        MX_ERRNO_MAP(MX_ERR_MSG)
#undef MX_ERR_MSG
    default:
        return "unknown error";
    }
}

const char *mx_errname(int err)
{
    switch (err) {
    case 0:
        return "OK";
#define MX_ERR_NAME(name, msg)                                                                     \
    case MX_E##name:                                                                               \
        return #name;
        MX_ERRNO_MAP(MX_ERR_NAME)
#undef MX_ERR_NAME
    default:
        return "UNKNOWN";
    }
}
