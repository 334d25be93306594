// Training kernel bodies (see train_kernels.h), written once over the vector-traits struct `V`.
//
// Included by each ISA file inside its own namespace, right after kernels_impl.h, so V, W, vexp,
// verf, load_n/store_n and k_softmax are in scope and every body is compiled with that file's ISA
// flags. Like kernels_impl.h, nothing from the standard library with inline bodies is used here.

#ifndef BORT_TRAIN_IMPL_BODY
#error "include train_kernels_impl.h from an ISA file only"
#endif

static float t_layernorm_fwd(float* y, float* xhat, const float* x, const float* g, const float* b, int n, float eps) {
  F s0 = V::zero();
  int i = 0;
  for (; i + W <= n; i += W) s0 = V::add(s0, V::load(x + i));
  float sum = V::reduce_add(s0);
  for (; i < n; ++i) sum += x[i];
  const float mean = sum / (float)n;
  const F vm = V::set1(mean);
  F q0 = V::zero();
  i = 0;
  for (; i + W <= n; i += W) {
    F d = V::sub(V::load(x + i), vm);
    q0 = V::fmadd(d, d, q0);
  }
  float var = V::reduce_add(q0);
  for (; i < n; ++i) var += (x[i] - mean) * (x[i] - mean);
  var /= (float)n;
  const float rstd = 1.0f / __builtin_sqrtf(var + eps);
  const F vr = V::set1(rstd);
  i = 0;
  for (; i + W <= n; i += W) {
    F d = V::mul(V::sub(V::load(x + i), vm), vr);
    V::store(xhat + i, d);
    V::store(y + i, V::fmadd(d, V::load(g + i), V::load(b + i)));
  }
  for (; i < n; ++i) {
    const float d = (x[i] - mean) * rstd;
    xhat[i] = d;
    y[i] = d * g[i] + b[i];
  }
  return rstd;
}

static void t_layernorm_bwd(float* dx, const float* dy, const float* xhat, const float* g, float rstd, int n) {
  // a = mean(dy*g), c = mean(dy*g*xhat)
  F sa = V::zero(), sc = V::zero();
  int i = 0;
  for (; i + W <= n; i += W) {
    F t = V::mul(V::load(dy + i), V::load(g + i));
    sa = V::add(sa, t);
    sc = V::fmadd(t, V::load(xhat + i), sc);
  }
  float a = V::reduce_add(sa), c = V::reduce_add(sc);
  for (; i < n; ++i) {
    const float t = dy[i] * g[i];
    a += t;
    c += t * xhat[i];
  }
  a /= (float)n;
  c /= (float)n;
  const F va = V::set1(a), vc = V::set1(c), vr = V::set1(rstd);
  i = 0;
  for (; i + W <= n; i += W) {
    F t = V::mul(V::load(dy + i), V::load(g + i));
    F r = V::fnmadd(V::load(xhat + i), vc, V::sub(t, va));
    V::store(dx + i, V::mul(r, vr));
  }
  for (; i < n; ++i) dx[i] = (dy[i] * g[i] - a - xhat[i] * c) * rstd;
}

static void t_gelu_fwd(float* y, const float* u, size_t n) {
  size_t i = 0;
  for (; i + W <= n; i += W) V::store(y + i, vgelu(V::load(u + i)));
  if (i < n) store_n(y + i, vgelu(load_n(u + i, (int)(n - i), 0.0f)), (int)(n - i));
}

// gelu'(u) = 0.5 (1 + erf(u / sqrt 2)) + u exp(-u^2 / 2) / sqrt(2 pi)
static inline F vgelu_grad(F u) {
  F cdf = V::mul(V::set1(0.5f), V::add(V::set1(1.0f), verf(V::mul(u, V::set1(0.70710678118654752f)))));
  F pdf = V::mul(vexp(V::mul(V::set1(-0.5f), V::mul(u, u))), V::set1(0.39894228040143268f));
  return V::fmadd(u, pdf, cdf);
}

static void t_gelu_bwd(float* dy, const float* u, size_t n) {
  size_t i = 0;
  for (; i + W <= n; i += W) V::store(dy + i, V::mul(V::load(dy + i), vgelu_grad(V::load(u + i))));
  if (i < n) {
    const int r = (int)(n - i);
    store_n(dy + i, V::mul(load_n(dy + i, r, 0.0f), vgelu_grad(load_n(u + i, r, 0.0f))), r);
  }
}

static void t_axpy(float* y, float a, const float* x, int n) {
  const F va = V::set1(a);
  int i = 0;
  for (; i + W <= n; i += W) V::store(y + i, V::fmadd(va, V::load(x + i), V::load(y + i)));
  for (; i < n; ++i) y[i] += a * x[i];
}

static double t_sumsq(const float* x, size_t n) {
  double total = 0.0;
  size_t i = 0;
  // float lanes over blocks of 1024 values, then into double: no drift over millions of values
  while (i < n) {
    const size_t end = n - i > 1024 ? i + 1024 : n;
    F s = V::zero();
    for (; i + W <= end; i += W) {
      F v = V::load(x + i);
      s = V::fmadd(v, v, s);
    }
    double part = V::reduce_add(s);
    for (; i < end; ++i) part += (double)x[i] * x[i];
    total += part;
  }
  return total;
}

static float t_row_max(const float* x, int n) {
  int i = 0;
  float m = x[0];
  if (n >= W) {
    F v = V::load(x);
    for (i = W; i + W <= n; i += W) v = V::max(v, V::load(x + i));
    m = V::reduce_max(v);
  }
  for (; i < n; ++i) m = x[i] > m ? x[i] : m;
  return m;
}

static double t_row_dot(const float* x, const float* y, int n) {
  double total = 0.0;
  int i = 0;
  while (i < n) {
    const int end = n - i > 1024 ? i + 1024 : n;
    F s = V::zero();
    for (; i + W <= end; i += W) s = V::fmadd(V::load(x + i), y ? V::load(y + i) : V::set1(1.0f), s);
    double part = V::reduce_add(s);
    for (; i < end; ++i) part += (double)x[i] * (y ? y[i] : 1.0f);
    total += part;
  }
  return total;
}

static double t_row_sum(const float* x, int n) { return t_row_dot(x, nullptr, n); }

static void t_acc_mul(float* acc, const float* x, const float* y, int n) {
  int i = 0;
  if (y) {
    for (; i + W <= n; i += W) V::store(acc + i, V::fmadd(V::load(x + i), V::load(y + i), V::load(acc + i)));
    for (; i < n; ++i) acc[i] += x[i] * y[i];
  } else {
    for (; i + W <= n; i += W) V::store(acc + i, V::add(V::load(x + i), V::load(acc + i)));
    for (; i < n; ++i) acc[i] += x[i];
  }
}

static void t_adamw(float* p, float* m, float* v, const float* g, size_t n, float lr, float b1, float b2, float eps, float wd,
                    float bc1, float bc2, float gscale) {
  const float decay = 1.0f - lr * wd, ob1 = 1.0f - b1, ob2 = 1.0f - b2, ibc1 = 1.0f / bc1, ibc2 = 1.0f / bc2;
  for (size_t i = 0; i < n; ++i) {
    const float gi = g[i] * gscale;
    const float mi = b1 * m[i] + ob1 * gi;
    const float vi = b2 * v[i] + ob2 * gi * gi;
    m[i] = mi;
    v[i] = vi;
    p[i] = p[i] * decay - lr * (mi * ibc1) / (__builtin_sqrtf(vi * ibc2) + eps);
  }
}

static const TrainKernels kTrainTable = {
    ISA_NAME, t_layernorm_fwd, t_layernorm_bwd, t_gelu_fwd, t_gelu_bwd, t_axpy, t_sumsq, t_row_max, t_row_sum, t_row_dot, t_acc_mul,
    t_adamw,
};
