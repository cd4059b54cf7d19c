/* numfmt_fmt.cpp - mx_numfmt.h over the fmt library. fmt formats with a
 * given precision correctly rounded, as glibc does, so the text equals
 * "%.15g"; test_calc.c compares the two on many values. No exception can
 * escape: a 32-byte buffer always holds a %.15g number. */
#include "mx_numfmt.h"

#include <fmt/format.h>

extern "C" size_t mx_fmt_g15(double v, char *buf)
{
    try {
        auto r = fmt::format_to_n(buf, MX_NUMFMT_MAX - 1, "{:.15g}", v);
        size_t n = r.size < MX_NUMFMT_MAX - 1 ? r.size : MX_NUMFMT_MAX - 1;
        buf[n] = '\0';
        return n;
    } catch (...) {
        buf[0] = '0';
        buf[1] = '\0';
        return 1;
    }
}
