/* Boolean circuits: Bristol Fashion parsing and writing, validation, cleartext
 * evaluation (bit-sliced over a batch) and the compilation of a circuit into the
 * program the garbling kernels run (ezp_garble.h).
 *
 * Circuit IR (one entry per single-output gate, in topological order):
 *   op[g]  EZP_IR_XOR, EZP_IR_AND, EZP_IR_INV, EZP_IR_EQW (copy), EZP_IR_EQ (constant)
 *   a[g], b[g]  input wires (b unused for INV/EQW/EQ; for EQ, a holds the constant 0/1)
 *   c[g]  output wire
 * Wire numbers are those of the file.  A Bristol MAND line becomes one AND entry per
 * output.  A wire may be written more than once (the later value wins for the gates
 * that follow); it must be set (an input, or written by an earlier gate) before it
 * is read.
 *
 * Program (what the garbler and evaluator execute), produced by ezp_compile():
 *   - EQW gates disappear (the output wire becomes an alias of the input);
 *   - every value gets its own version (SSA), versions get an "AND depth";
 *   - gates are ordered by depth (stable counting sort) so that the AND gates of one
 *     depth form a contiguous run of independent gates: the kernels pipeline AES
 *     across such a run (and across the copies of a batch);
 *   - values are mapped to label "slots" by liveness (a slot is reused once its
 *     value is dead), so the label memory is nslots x copies x 16 bytes.
 */
#ifndef EZP_BRISTOL_H
#define EZP_BRISTOL_H

#include <stdint.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>

enum { EZP_IR_XOR = 0, EZP_IR_AND = 1, EZP_IR_INV = 2, EZP_IR_EQW = 3, EZP_IR_EQ = 4 };
/* program ops */
enum { EZP_P_XOR = 0, EZP_P_AND = 1, EZP_P_INV = 2, EZP_P_COPY = 3, EZP_P_ZERO = 4, EZP_P_ONE = 5 };

#define EZP_NONE 0xFFFFFFFFu

typedef struct {
    int64_t line;        /* line (parser) or gate index (validator) of the error, -1 if none */
    char msg[240];
} ezp_err;

static inline void ezp__seterr(ezp_err *e, int64_t line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
#include <stdarg.h>
static inline void ezp__seterr(ezp_err *e, int64_t line, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    e->line = line;
    vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
    va_end(ap);
}

/* ------------------------------------------------------------------ parser */

typedef struct {
    const char *p, *end;
    int64_t line;
} ezp__lex;

static inline int ezp__is_sp(char ch) { return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\f' || ch == '\v'; }

/* skip spaces (not newlines) */
static inline void ezp__skip_sp(ezp__lex *L) {
    while (L->p < L->end && ezp__is_sp(*L->p)) L->p++;
}

/* at end of line (after spaces)? */
static inline int ezp__at_eol(ezp__lex *L) {
    ezp__skip_sp(L);
    return L->p >= L->end || *L->p == '\n';
}

/* next token on this line: returns its length (0 if the line ended) */
static inline size_t ezp__token(ezp__lex *L, const char **tok) {
    ezp__skip_sp(L);
    const char *s = L->p;
    while (L->p < L->end && !ezp__is_sp(*L->p) && *L->p != '\n') L->p++;
    *tok = s;
    return (size_t)(L->p - s);
}

static inline void ezp__show(char *dst, size_t cap, const char *tok, size_t n) {
    size_t m = n < cap - 4 ? n : cap - 4;
    size_t k = 0;
    for (size_t i = 0; i < m; i++) {
        unsigned char ch = (unsigned char)tok[i];
        dst[k++] = (ch >= 32 && ch < 127) ? (char)ch : '?';
    }
    if (m < n) { dst[k++] = '.'; dst[k++] = '.'; dst[k++] = '.'; }
    dst[k] = 0;
}

/* read an unsigned decimal integer token; 0 on success */
static inline int ezp__uint(ezp__lex *L, uint64_t *v, ezp_err *e, const char *what) {
    const char *t;
    size_t n = ezp__token(L, &t);
    if (n == 0) {
        ezp__seterr(e, L->line, "expected %s, the line ends", what);
        return -1;
    }
    uint64_t x = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned d = (unsigned)(unsigned char)t[i] - '0';
        if (d > 9) {
            char s[40];
            ezp__show(s, sizeof s, t, n);
            ezp__seterr(e, L->line, "expected %s, got '%s'", what, s);
            return -1;
        }
        if (x > (UINT64_MAX - d) / 10) {
            ezp__seterr(e, L->line, "%s is too large", what);
            return -1;
        }
        x = x * 10 + d;
    }
    *v = x;
    return 0;
}

/* go to the start of the next line with a token; returns 0 if found, 1 at EOF */
static inline int ezp__next_nonblank(ezp__lex *L) {
    for (;;) {
        ezp__skip_sp(L);
        if (L->p >= L->end) return 1;
        if (*L->p == '\n') { L->p++; L->line++; continue; }
        return 0;
    }
}

static inline int ezp__end_line(ezp__lex *L, ezp_err *e) {
    if (!ezp__at_eol(L)) {
        const char *t;
        size_t n = ezp__token(L, &t);
        char s[40];
        ezp__show(s, sizeof s, t, n);
        ezp__seterr(e, L->line, "unexpected token '%s' at the end of the gate", s);
        return -1;
    }
    if (L->p < L->end) { L->p++; L->line++; }
    return 0;
}

static inline int ezp__bit_get(const uint8_t *m, uint64_t w) { return (m[w >> 3] >> (w & 7)) & 1; }
static inline void ezp__bit_set(uint8_t *m, uint64_t w) { m[w >> 3] |= (uint8_t)(1u << (w & 7)); }

/* Parse the gate section.  `data[pos..len)` starts at line `line`.  Expects `ngates`
 * gate lines over `nwires` wires, of which the first `nin` are set on entry.
 * Writes at most `cap` IR entries; *nout_gates gets the count.  `isset` is a zeroed
 * bitmap of nwires bits; `stamp` a zeroed uint32 array of nwires entries (MAND
 * overlap check).  Returns 0, or -1 with *e set. */
static int ezp_parse_gates(const char *data, size_t len, size_t pos, int64_t line,
                           uint64_t ngates, uint64_t nwires, uint64_t nin,
                           uint8_t *op, uint32_t *a, uint32_t *b, uint32_t *c, size_t cap,
                           size_t *nout_gates, uint8_t *isset, uint32_t *stamp, ezp_err *e) {
    ezp__lex L = {data + pos, data + len, line};
    size_t n = 0;
    uint64_t glines = 0;
    uint32_t mstamp = 0;
    for (uint64_t w = 0; w < nin; w++) ezp__bit_set(isset, w);
    uint64_t *tmp = NULL;
    size_t tmpcap = 0;
    int rc = -1;
    while (!ezp__next_nonblank(&L)) {
        if (glines == ngates) {
            ezp__seterr(e, L.line, "more gate lines than the %llu announced on line 1",
                        (unsigned long long)ngates);
            goto out;
        }
        uint64_t gin, gout;
        if (ezp__uint(&L, &gin, e, "the number of gate inputs")) goto out;
        if (ezp__uint(&L, &gout, e, "the number of gate outputs")) goto out;
        if (gin == 0 || gout == 0 || gin > (1u << 30) || gout > (1u << 30)) {
            ezp__seterr(e, L.line, "invalid gate arity %llu %llu", (unsigned long long)gin,
                        (unsigned long long)gout);
            goto out;
        }
        uint64_t nw = gin + gout;
        if (nw > (uint64_t)(L.end - L.p) / 2 + 1) {
            ezp__seterr(e, L.line, "the gate announces %llu wires, more than the rest of the file holds",
                        (unsigned long long)nw);
            goto out;
        }
        if (nw > tmpcap) {
            size_t nc = nw < 16 ? 16 : (size_t)nw;
            uint64_t *t2 = (uint64_t *)realloc(tmp, nc * sizeof(uint64_t));
            if (!t2) { ezp__seterr(e, L.line, "out of memory"); goto out; }
            tmp = t2;
            tmpcap = nc;
        }
        for (uint64_t i = 0; i < nw; i++)
            if (ezp__uint(&L, &tmp[i], e, i < gin ? "an input wire number" : "an output wire number")) goto out;
        const char *t;
        size_t tl = ezp__token(&L, &t);
        if (tl == 0) { ezp__seterr(e, L.line, "missing gate operation after %llu wires", (unsigned long long)nw); goto out; }
        int kind = -1;
        if (tl == 3 && !memcmp(t, "XOR", 3)) kind = EZP_IR_XOR;
        else if (tl == 3 && !memcmp(t, "AND", 3)) kind = EZP_IR_AND;
        else if (tl == 3 && !memcmp(t, "INV", 3)) kind = EZP_IR_INV;
        else if (tl == 3 && !memcmp(t, "EQW", 3)) kind = EZP_IR_EQW;
        else if (tl == 2 && !memcmp(t, "EQ", 2)) kind = EZP_IR_EQ;
        else if (tl == 4 && !memcmp(t, "MAND", 4)) kind = 100;
        if (kind < 0) {
            char s[40];
            ezp__show(s, sizeof s, t, tl);
            ezp__seterr(e, L.line, "unknown gate operation '%s'", s);
            goto out;
        }
        int ok;
        switch (kind) {
        case EZP_IR_XOR: case EZP_IR_AND: ok = gin == 2 && gout == 1; break;
        case 100: ok = gin == 2 * gout; break;
        default: ok = gin == 1 && gout == 1;
        }
        if (!ok) {
            ezp__seterr(e, L.line, "%.*s gate with %llu inputs and %llu outputs", (int)tl, t,
                        (unsigned long long)gin, (unsigned long long)gout);
            goto out;
        }
        int64_t ln = L.line;
        if (ezp__end_line(&L, e)) goto out;
        /* range and read-before-set checks */
        for (uint64_t i = 0; i < nw; i++) {
            if (kind == EZP_IR_EQ && i == 0) {
                if (tmp[0] > 1) {
                    ezp__seterr(e, ln, "EQ constant must be 0 or 1, got %llu", (unsigned long long)tmp[0]);
                    goto out;
                }
                continue;
            }
            if (tmp[i] >= nwires) {
                ezp__seterr(e, ln, "wire %llu out of range (the circuit has %llu wires)",
                            (unsigned long long)tmp[i], (unsigned long long)nwires);
                goto out;
            }
        }
        if (kind == 100) {
            mstamp++;
            if (mstamp == 0) { memset(stamp, 0, sizeof(uint32_t) * (size_t)nwires); mstamp = 1; }
            for (uint64_t i = gin; i < nw; i++) {
                if (stamp[tmp[i]] == mstamp) {
                    ezp__seterr(e, ln, "MAND writes wire %llu twice", (unsigned long long)tmp[i]);
                    goto out;
                }
                stamp[tmp[i]] = mstamp;
            }
            for (uint64_t i = 0; i < gin; i++) {
                if (stamp[tmp[i]] == mstamp) {
                    ezp__seterr(e, ln, "MAND output wire %llu is also one of its inputs", (unsigned long long)tmp[i]);
                    goto out;
                }
            }
        }
        for (uint64_t i = 0; i < gin; i++) {
            if (kind == EZP_IR_EQ) break;
            if (!ezp__bit_get(isset, tmp[i])) {
                ezp__seterr(e, ln, "wire %llu is read before it is set", (unsigned long long)tmp[i]);
                goto out;
            }
        }
        if (n + gout > cap) { ezp__seterr(e, ln, "too many gates for the file size"); goto out; }
        if (kind == 100) {
            for (uint64_t i = 0; i < gout; i++) {
                op[n] = EZP_IR_AND; a[n] = (uint32_t)tmp[i]; b[n] = (uint32_t)tmp[gout + i];
                c[n] = (uint32_t)tmp[gin + i];
                n++;
            }
        } else {
            op[n] = (uint8_t)kind;
            a[n] = (uint32_t)tmp[0];
            b[n] = (kind == EZP_IR_XOR || kind == EZP_IR_AND) ? (uint32_t)tmp[1] : 0;
            c[n] = (uint32_t)tmp[gin];
            n++;
        }
        for (uint64_t i = gin; i < nw; i++) ezp__bit_set(isset, tmp[i]);
        glines++;
    }
    if (glines != ngates) {
        ezp__seterr(e, L.line, "file ends after %llu gate lines, line 1 announced %llu (truncated?)",
                    (unsigned long long)glines, (unsigned long long)ngates);
        goto out;
    }
    *nout_gates = n;
    rc = 0;
out:
    free(tmp);
    return rc;
}

/* Validate IR arrays built in memory: wires in range, read after set, constants 0/1.
 * Returns 0, or -1 with e->line = gate index. */
static int ezp_validate(const uint8_t *op, const uint32_t *a, const uint32_t *b, const uint32_t *c,
                        size_t ng, uint64_t nwires, uint64_t nin, uint8_t *isset, ezp_err *e) {
    for (uint64_t w = 0; w < nin; w++) ezp__bit_set(isset, w);
    for (size_t g = 0; g < ng; g++) {
        uint8_t o = op[g];
        if (o > EZP_IR_EQ) { ezp__seterr(e, (int64_t)g, "unknown op code %u", o); return -1; }
        if (c[g] >= nwires) {
            ezp__seterr(e, (int64_t)g, "output wire %u out of range (%llu wires)", c[g], (unsigned long long)nwires);
            return -1;
        }
        if (o == EZP_IR_EQ) {
            if (a[g] > 1) { ezp__seterr(e, (int64_t)g, "EQ constant must be 0 or 1, got %u", a[g]); return -1; }
        } else {
            int k = (o == EZP_IR_XOR || o == EZP_IR_AND) ? 2 : 1;
            for (int i = 0; i < k; i++) {
                uint32_t w = i ? b[g] : a[g];
                if (w >= nwires) {
                    ezp__seterr(e, (int64_t)g, "input wire %u out of range (%llu wires)", w, (unsigned long long)nwires);
                    return -1;
                }
                if (!ezp__bit_get(isset, w)) {
                    ezp__seterr(e, (int64_t)g, "wire %u is read before it is set", w);
                    return -1;
                }
            }
        }
        ezp__bit_set(isset, c[g]);
    }
    return 0;
}

/* ------------------------------------------------------------------ writer */

static inline char *ezp__wu(char *p, uint64_t v) {
    char buf[24];
    int k = 0;
    do { buf[k++] = (char)('0' + v % 10); v /= 10; } while (v);
    while (k) *p++ = buf[--k];
    return p;
}

/* Write the gate lines into out (capacity >= 48 * ng); returns the number of bytes. */
static size_t ezp_write_gates(const uint8_t *op, const uint32_t *a, const uint32_t *b, const uint32_t *c,
                              size_t ng, char *out) {
    char *p = out;
    for (size_t g = 0; g < ng; g++) {
        switch (op[g]) {
        case EZP_IR_XOR: case EZP_IR_AND:
            memcpy(p, "2 1 ", 4); p += 4;
            p = ezp__wu(p, a[g]); *p++ = ' ';
            p = ezp__wu(p, b[g]); *p++ = ' ';
            p = ezp__wu(p, c[g]); *p++ = ' ';
            memcpy(p, op[g] == EZP_IR_XOR ? "XOR\n" : "AND\n", 4); p += 4;
            break;
        default:
            memcpy(p, "1 1 ", 4); p += 4;
            p = ezp__wu(p, a[g]); *p++ = ' ';
            p = ezp__wu(p, c[g]); *p++ = ' ';
            if (op[g] == EZP_IR_INV) { memcpy(p, "INV\n", 4); p += 4; }
            else if (op[g] == EZP_IR_EQW) { memcpy(p, "EQW\n", 4); p += 4; }
            else { memcpy(p, "EQ\n", 3); p += 3; }
        }
    }
    return (size_t)(p - out);
}

/* ------------------------------------------------------------------ cleartext evaluation */

/* wires: nwires rows of nw uint64 words (bit-sliced batch); input rows filled. */
static void ezp_eval_plain(const uint8_t *op, const uint32_t *a, const uint32_t *b, const uint32_t *c,
                           size_t ng, uint64_t *wires, size_t nw) {
    for (size_t g = 0; g < ng; g++) {
        uint64_t *o = wires + (size_t)c[g] * nw;
        const uint64_t *x = wires + (size_t)a[g] * nw;
        const uint64_t *y = wires + (size_t)b[g] * nw;
        switch (op[g]) {
        case EZP_IR_XOR: for (size_t i = 0; i < nw; i++) o[i] = x[i] ^ y[i]; break;
        case EZP_IR_AND: for (size_t i = 0; i < nw; i++) o[i] = x[i] & y[i]; break;
        case EZP_IR_INV: for (size_t i = 0; i < nw; i++) o[i] = ~x[i]; break;
        case EZP_IR_EQW: if (o != x) memcpy(o, x, nw * 8); break;
        default: { uint64_t v = a[g] ? ~(uint64_t)0 : 0; for (size_t i = 0; i < nw; i++) o[i] = v; }
        }
    }
}

/* ------------------------------------------------------------------ compilation to a program */

typedef struct {
    /* outputs, arrays of capacity ng (instructions) */
    uint8_t *op;
    uint32_t *sa, *sb, *so;
    uint32_t *run_end;      /* for AND instructions: end (exclusive) of their run */
    uint32_t *out_slots;    /* nout */
    size_t ninstr, nand, nslots, max_run, and_depth, nruns;
} ezp_prog_out;

/* Compile.  Scratch needs: cur[nwires], and version arrays of nin+ng entries.  All
 * allocated here; returns 0 or -1 (out of memory). */
static int ezp_compile(const uint8_t *op, const uint32_t *a, const uint32_t *b, const uint32_t *c,
                       size_t ng, uint64_t nwires, uint64_t nin, const uint32_t *outw, size_t nout,
                       ezp_prog_out *P) {
    int rc = -1;
    size_t nv = (size_t)nin + ng;
    uint32_t *cur = (uint32_t *)malloc(sizeof(uint32_t) * (size_t)(nwires ? nwires : 1));
    uint32_t *depth = (uint32_t *)malloc(sizeof(uint32_t) * (nv ? nv : 1));
    uint32_t *key = (uint32_t *)malloc(sizeof(uint32_t) * (ng ? ng : 1));
    uint32_t *iva = (uint32_t *)malloc(sizeof(uint32_t) * (ng ? ng : 1));
    uint32_t *ivb = (uint32_t *)malloc(sizeof(uint32_t) * (ng ? ng : 1));
    uint8_t *iop = (uint8_t *)malloc(ng ? ng : 1);
    uint32_t *order = (uint32_t *)malloc(sizeof(uint32_t) * (ng ? ng : 1));
    uint32_t *last = (uint32_t *)malloc(sizeof(uint32_t) * (nv ? nv : 1));
    uint32_t *slot = (uint32_t *)malloc(sizeof(uint32_t) * (nv ? nv : 1));
    uint32_t *freel = (uint32_t *)malloc(sizeof(uint32_t) * (nv ? nv : 1));
    size_t *cnt = NULL;
    if (!cur || !depth || !key || !iva || !ivb || !iop || !order || !last || !slot || !freel) goto out;

    for (uint64_t w = 0; w < nwires; w++) cur[w] = w < nin ? (uint32_t)w : EZP_NONE;
    for (uint64_t v = 0; v < nin; v++) depth[v] = 0;
    size_t ni = 0;
    uint32_t maxd = 0;
    for (size_t g = 0; g < ng; g++) {
        uint8_t o = op[g];
        if (o == EZP_IR_EQW) { cur[c[g]] = cur[a[g]]; continue; }
        uint32_t v = (uint32_t)(nin + ni), d = 0;
        switch (o) {
        case EZP_IR_XOR: case EZP_IR_AND: {
            uint32_t va = cur[a[g]], vb = cur[b[g]];
            iva[ni] = va; ivb[ni] = vb;
            d = depth[va] > depth[vb] ? depth[va] : depth[vb];
            if (o == EZP_IR_AND) d++;
            iop[ni] = o == EZP_IR_XOR ? EZP_P_XOR : EZP_P_AND;
            break;
        }
        case EZP_IR_INV:
            iva[ni] = ivb[ni] = cur[a[g]];
            d = depth[iva[ni]];
            iop[ni] = EZP_P_INV;
            break;
        default: /* EQ */
            iva[ni] = ivb[ni] = EZP_NONE;
            iop[ni] = a[g] ? EZP_P_ONE : EZP_P_ZERO;
        }
        depth[v] = d;
        if (d > maxd) maxd = d;
        key[ni] = iop[ni] == EZP_P_AND ? 2 * d - 1 : 2 * d;
        cur[c[g]] = v;
        ni++;
    }
    /* stable counting sort by key */
    size_t nk = 2 * (size_t)maxd + 1;
    cnt = (size_t *)calloc(nk + 1, sizeof(size_t));
    if (!cnt) goto out;
    for (size_t i = 0; i < ni; i++) cnt[key[i] + 1]++;
    for (size_t k = 0; k < nk; k++) cnt[k + 1] += cnt[k];
    for (size_t i = 0; i < ni; i++) order[cnt[key[i]]++] = (uint32_t)i;
    /* liveness: last exec position reading each version */
    for (size_t v = 0; v < nin + ni; v++) last[v] = EZP_NONE;
    for (size_t p = 0; p < ni; p++) {
        size_t i = order[p];
        if (iva[i] != EZP_NONE) last[iva[i]] = (uint32_t)p;
        if (ivb[i] != EZP_NONE) last[ivb[i]] = (uint32_t)p;
    }
    const uint32_t KEEP = EZP_NONE - 1;
    for (size_t j = 0; j < nout; j++) {
        uint32_t v = cur[outw[j]];
        last[v] = KEEP;
    }
    /* slot allocation */
    size_t nfree = 0, nslots = (size_t)nin;
    for (size_t v = 0; v < nin; v++) slot[v] = (uint32_t)v;
    for (size_t v = nin; v-- > 0;)
        if (last[v] == EZP_NONE) freel[nfree++] = slot[v];
    size_t nand = 0, nruns = 0, max_run = 0;
    for (size_t p = 0; p < ni; p++) {
        size_t i = order[p];
        uint32_t va = iva[i], vb = ivb[i];
        if (va != EZP_NONE && last[va] == p) freel[nfree++] = slot[va];
        if (vb != EZP_NONE && vb != va && last[vb] == p) freel[nfree++] = slot[vb];
        uint32_t s = nfree ? freel[--nfree] : (uint32_t)nslots++;
        uint32_t v = (uint32_t)(nin + i);
        slot[v] = s;
        if (last[v] == EZP_NONE) freel[nfree++] = s;   /* dead value: slot free again at once */
        P->op[p] = iop[i];
        P->sa[p] = va != EZP_NONE ? slot[va] : 0;
        P->sb[p] = vb != EZP_NONE ? slot[vb] : 0;
        P->so[p] = s;
        if (iop[i] == EZP_P_AND) nand++;
    }
    /* AND runs: maximal stretches of AND instructions with the same key */
    for (size_t p = 0; p < ni;) {
        if (P->op[p] != EZP_P_AND) { P->run_end[p] = 0; p++; continue; }
        size_t q = p + 1;
        uint32_t k0 = key[order[p]];
        while (q < ni && P->op[q] == EZP_P_AND && key[order[q]] == k0) q++;
        for (size_t r = p; r < q; r++) P->run_end[r] = (uint32_t)q;
        if (q - p > max_run) max_run = q - p;
        nruns++;
        p = q;
    }
    for (size_t j = 0; j < nout; j++) P->out_slots[j] = slot[cur[outw[j]]];
    P->ninstr = ni;
    P->nand = nand;
    P->nslots = nslots ? nslots : 1;
    P->max_run = max_run;
    P->and_depth = maxd;
    P->nruns = nruns;
    rc = 0;
out:
    free(cur); free(depth); free(key); free(iva); free(ivb); free(iop); free(order);
    free(last); free(slot); free(freel); free(cnt);
    return rc;
}

/* AND level of every IR gate (0 for non-AND gates: their value depth is not needed by
 * callers) and the AND depth; level[g] = 1 + max depth of the inputs for an AND. */
static int ezp_and_levels(const uint8_t *op, const uint32_t *a, const uint32_t *b, const uint32_t *c,
                          size_t ng, uint64_t nwires, uint32_t *level, uint32_t *maxlevel) {
    uint32_t *d = (uint32_t *)calloc((size_t)(nwires ? nwires : 1), sizeof(uint32_t));
    if (!d) return -1;
    uint32_t m = 0;
    for (size_t g = 0; g < ng; g++) {
        uint32_t x = 0;
        switch (op[g]) {
        case EZP_IR_XOR: x = d[a[g]] > d[b[g]] ? d[a[g]] : d[b[g]]; level[g] = 0; break;
        case EZP_IR_AND: x = (d[a[g]] > d[b[g]] ? d[a[g]] : d[b[g]]) + 1; level[g] = x; break;
        case EZP_IR_INV: case EZP_IR_EQW: x = d[a[g]]; level[g] = 0; break;
        default: x = 0; level[g] = 0;
        }
        d[c[g]] = x;
        if (x > m) m = x;
    }
    *maxlevel = m;
    free(d);
    return 0;
}

/* Dead-gate marking for circuit builders (wire ids are int64, SSA, negative = constant):
 * live[id] must be 1 for the output ids on entry; gate_live[g] is set for every gate
 * whose output is needed. */
static void ezp_mark_live(const uint8_t *op, const int64_t *a, const int64_t *b, const int64_t *c, size_t ng,
                          uint8_t *live, uint8_t *gate_live) {
    for (size_t g = ng; g-- > 0;) {
        if (c[g] < 0 || !live[c[g]]) { gate_live[g] = 0; continue; }
        gate_live[g] = 1;
        uint8_t o = op[g];
        if (o == EZP_IR_EQ) continue;
        if (a[g] >= 0) live[a[g]] = 1;
        if ((o == EZP_IR_XOR || o == EZP_IR_AND) && b[g] >= 0) live[b[g]] = 1;
    }
}

#endif /* EZP_BRISTOL_H */
