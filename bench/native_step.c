/* A native probe of the capacity protocol's training step (bench/native_step.py): one
   replicate's forward, softmax and gradients of the frozen-front MLP that
   verifier/train/fused.py's _fixed_step computes with torch operations, fused row by row in
   AVX2 vectors (GCC vector extensions, -O3 -march=native). Not part of the product: it
   measures how far a compiled step could go below the eager one.

   Shapes (one replicate, row-major float32): h1_one (n, k) = [h1, 1]; block (k, M) =
   [W_in; b_in]; h1_out (n, D) = h1 + b_out; w_out (M, D); w_u2 (D, NO) = the centred W_U in
   base 2, zero-padded; zbias (NO) 0, -inf on the padding; w_u_t (NO, D) = W_U^T zero-padded;
   w_out_t (D, M); target (n); rows_of_u (n, D) = -W_U^T[t] / n. D = M = 16, NO a multiple
   of 8. Writes act, h2, P (probs), p_t (picked), each row's largest p (rowmax), sum log p_t,
   dW_out = act^T dh2 and d[W_in; b_in] = [h1, 1]^T dpre; returns 1 if a row sum overflowed.
*/
#include <stdint.h>
#include <string.h>
#include <math.h>

typedef float v8 __attribute__((vector_size(32)));
typedef int32_t v8i __attribute__((vector_size(32)));
#define L 8

static inline v8 splat(float x) { return (v8){x, x, x, x, x, x, x, x}; }
static inline v8 ld(const float *p) { v8 v; memcpy(&v, p, sizeof v); return v; }
static inline void st(float *p, v8 v) { memcpy(p, &v, sizeof v); }

/* 2^x lane-wise: x = n + f (n = round(x), |f| <= 1/2), 2^f by a degree-6 polynomial,
   2^n in the exponent bits; 0 below -126, inf above 128 (and for inf). */
static inline v8 exp2v(v8 x) {
    v8i under = x < splat(-126.0f);
    v8i over = x > splat(128.0f);
    v8 xc = (v8)(((v8i)x & ~(under | over)) | ((v8i)splat(0.0f) & (under | over)));
    v8 magic = splat(12582912.0f);
    v8 n = (xc + magic) - magic;
    v8 f = xc - n;
    v8 p = splat(1.5353362e-4f);
    p = p * f + splat(1.3398874e-3f);
    p = p * f + splat(9.6182880e-3f);
    p = p * f + splat(5.5503406e-2f);
    p = p * f + splat(2.4022652e-1f);
    p = p * f + splat(6.9314720e-1f);
    p = p * f + splat(1.0f);
    v8i e = (__builtin_convertvector(n, v8i) + 127) << 23;
    v8 r = p * (v8)e;
    v8i inf = (v8i)splat(INFINITY);
    return (v8)((((v8i)r) & ~(under | over)) | (inf & over));
}

static inline float hsum(v8 v) {
    float s = 0.0f;
    for (int i = 0; i < L; i++) s += v[i];
    return s;
}

int capacity_step(
    int n, int k, int M, int D, int NO,
    const float *restrict h1_one, const float *restrict block, const float *restrict h1_out,
    const float *restrict w_out, const float *restrict w_u2, const float *restrict zbias,
    const float *restrict w_u_t, const float *restrict w_out_t, const int64_t *restrict target,
    const float *restrict rows_of_u, float scale,
    float *restrict act, float *restrict h2, float *restrict probs, float *restrict picked,
    float *restrict rowmax, double *restrict log_sum, float *restrict out_grad,
    float *restrict in_grad, float *restrict dh2, float *restrict dpre)
{
    /* D, M = 16 here (two vectors); the probe's shape */
    v8 zero = splat(0.0f);
    /* phase 1: act = relu([h1, 1] block), h2 = h1_out + act W_out, four rows at a time */
    for (int i = 0; i < n; i += 4) {
        int rows = n - i < 4 ? n - i : 4;
        v8 a0[4], a1[4];
        for (int q = 0; q < 4; q++) a0[q] = a1[q] = zero;
        for (int r = 0; r < k; r++) {
            v8 b0 = ld(block + (size_t)r * M), b1 = ld(block + (size_t)r * M + L);
            for (int q = 0; q < rows; q++) {
                v8 xr = splat(h1_one[(size_t)(i + q) * k + r]);
                a0[q] += xr * b0; a1[q] += xr * b1;
            }
        }
        for (int q = 0; q < rows; q++) {
            a0[q] = (v8)((v8i)a0[q] & (a0[q] > zero));
            a1[q] = (v8)((v8i)a1[q] & (a1[q] > zero));
            st(act + (size_t)(i + q) * M, a0[q]); st(act + (size_t)(i + q) * M + L, a1[q]);
        }
        v8 h0[4], hh1[4];
        for (int q = 0; q < rows; q++) {
            h0[q] = ld(h1_out + (size_t)(i + q) * D); hh1[q] = ld(h1_out + (size_t)(i + q) * D + L);
        }
        for (int r = 0; r < M; r++) {
            v8 w0 = ld(w_out + (size_t)r * D), w1 = ld(w_out + (size_t)r * D + L);
            for (int q = 0; q < rows; q++) {
                v8 ar = splat(act[(size_t)(i + q) * M + r]);
                h0[q] += ar * w0; hh1[q] += ar * w1;
            }
        }
        for (int q = 0; q < rows; q++) {
            st(h2 + (size_t)(i + q) * D, h0[q]); st(h2 + (size_t)(i + q) * D + L, hh1[q]);
        }
    }
    /* phase 2: per row, the softmax and dh2 = rows_of_u + scale P W_U^T */
    double ls = 0.0;
    int overflow = 0;
    for (int i = 0; i < n; i++) {
        const float *h = h2 + (size_t)i * D;
        float *p = probs + (size_t)i * NO;
        v8 vs = zero;
        v8 hb[16];
        for (int c = 0; c < D; c++) hb[c] = splat(h[c]);
        int j = 0;
        for (; j + 4 * L <= NO; j += 4 * L) {
            v8 z0 = ld(zbias + j), z1 = ld(zbias + j + L), z2 = ld(zbias + j + 2 * L), z3 = ld(zbias + j + 3 * L);
            for (int c = 0; c < D; c++) {
                const float *w = w_u2 + (size_t)c * NO + j;
                z0 += hb[c] * ld(w); z1 += hb[c] * ld(w + L); z2 += hb[c] * ld(w + 2 * L); z3 += hb[c] * ld(w + 3 * L);
            }
            z0 = exp2v(z0); z1 = exp2v(z1); z2 = exp2v(z2); z3 = exp2v(z3);
            vs += (z0 + z1) + (z2 + z3);
            st(p + j, z0); st(p + j + L, z1); st(p + j + 2 * L, z2); st(p + j + 3 * L, z3);
        }
        for (; j < NO; j += L) {
            v8 z = ld(zbias + j);
            for (int c = 0; c < D; c++) z += hb[c] * ld(w_u2 + (size_t)c * NO + j);
            z = exp2v(z);
            vs += z;
            st(p + j, z);
        }
        float s = hsum(vs);
        if (!(s < INFINITY)) { overflow = 1; continue; }
        float inv1 = 1.0f / s;
        v8 inv = splat(inv1), vm = zero;
        v8 g0 = zero, g1 = zero, g2 = zero, g3 = zero, e0 = zero, e1 = zero, e2 = zero, e3 = zero;
        for (int jj = 0; jj < NO; jj += 4) {
            const float *w = w_u_t + (size_t)jj * D;
            v8 p0 = splat(p[jj]), p1 = splat(p[jj + 1]), p2 = splat(p[jj + 2]), p3 = splat(p[jj + 3]);
            g0 += p0 * ld(w); e0 += p0 * ld(w + L);
            g1 += p1 * ld(w + D); e1 += p1 * ld(w + D + L);
            g2 += p2 * ld(w + 2 * D); e2 += p2 * ld(w + 2 * D + L);
            g3 += p3 * ld(w + 3 * D); e3 += p3 * ld(w + 3 * D + L);
        }
        for (j = 0; j < NO; j += L) {
            v8 e = ld(p + j) * inv;
            st(p + j, e);
            vm = (v8)(((v8i)vm & (vm >= e)) | ((v8i)e & ~(vm >= e)));
        }
        float mx = 0.0f;
        for (int l = 0; l < L; l++) mx = vm[l] > mx ? vm[l] : mx;
        float pt = p[target[i]];
        picked[i] = pt;
        rowmax[i] = mx;
        ls += logf(pt);
        v8 sc = splat(scale * inv1);
        st(dh2 + (size_t)i * D, ld(rows_of_u + (size_t)i * D) + sc * ((g0 + g1) + (g2 + g3)));
        st(dh2 + (size_t)i * D + L, ld(rows_of_u + (size_t)i * D + L) + sc * ((e0 + e1) + (e2 + e3)));
    }
    /* phase 3: dpre = (dh2 W_out^T) [act > 0], four rows at a time */
    for (int i = 0; i < n; i += 4) {
        int rows = n - i < 4 ? n - i : 4;
        v8 d0[4], d1[4];
        for (int q = 0; q < 4; q++) d0[q] = d1[q] = zero;
        for (int c = 0; c < D; c++) {
            v8 w0 = ld(w_out_t + (size_t)c * M), w1 = ld(w_out_t + (size_t)c * M + L);
            for (int q = 0; q < rows; q++) {
                v8 gc = splat(dh2[(size_t)(i + q) * D + c]);
                d0[q] += gc * w0; d1[q] += gc * w1;
            }
        }
        for (int q = 0; q < rows; q++) {
            v8 a0 = ld(act + (size_t)(i + q) * M), a1 = ld(act + (size_t)(i + q) * M + L);
            st(dpre + (size_t)(i + q) * M, (v8)((v8i)d0[q] & (a0 > zero)));
            st(dpre + (size_t)(i + q) * M + L, (v8)((v8i)d1[q] & (a1 > zero)));
        }
    }
    /* phase 4: out_grad = act^T dh2 (M x D), in_grad = [h1, 1]^T dpre (k x M), four rows of
       the result at a time */
    for (int r = 0; r < M; r += 4) {
        v8 o0[4], o1[4];
        for (int q = 0; q < 4; q++) o0[q] = o1[q] = zero;
        for (int i = 0; i < n; i++) {
            v8 x0 = ld(dh2 + (size_t)i * D), x1 = ld(dh2 + (size_t)i * D + L);
            for (int q = 0; q < 4; q++) {
                v8 ar = splat(act[(size_t)i * M + r + q]);
                o0[q] += ar * x0; o1[q] += ar * x1;
            }
        }
        for (int q = 0; q < 4; q++) {
            st(out_grad + (size_t)(r + q) * D, o0[q]); st(out_grad + (size_t)(r + q) * D + L, o1[q]);
        }
    }
    for (int r = 0; r < k; r += 4) {
        int rs = k - r < 4 ? k - r : 4;
        v8 o0[4], o1[4];
        for (int q = 0; q < 4; q++) o0[q] = o1[q] = zero;
        for (int i = 0; i < n; i++) {
            v8 x0 = ld(dpre + (size_t)i * M), x1 = ld(dpre + (size_t)i * M + L);
            for (int q = 0; q < rs; q++) {
                v8 xr = splat(h1_one[(size_t)i * k + r + q]);
                o0[q] += xr * x0; o1[q] += xr * x1;
            }
        }
        for (int q = 0; q < rs; q++) {
            st(in_grad + (size_t)(r + q) * M, o0[q]); st(in_grad + (size_t)(r + q) * M + L, o1[q]);
        }
    }
    *log_sum = ls;
    return overflow;
}
