/* ----------------------------------------------------------------------
   nequip_pol: common base of pair styles allegro/pol and nequip/pol.
   The extrapolation guard: the training range from the model's metadata, checked against the
   field and the pair distances at every force call.
------------------------------------------------------------------------- */

#include "pair_pol_base.h"
#include "pair_pol_util.h"

#include "atom.h"
#include "comm.h"
#include "error.h"
#include "update.h"
#include "utils.h"

#include <algorithm>
#include <cmath>

using namespace LAMMPS_NS;

// the training range (nequip_pol.guards.ranges_metadata): max |E| (V/A) and the smallest
// distance per species pair, "Ba-O:2.31 O-Ti:1.71" (A)
static const char *META_MAX_FIELD = "nequip_pol_max_field";
static const char *META_MIN_DISTANCE = "nequip_pol_min_distance";

/* ----------------------------------------------------------------------
   extrapolation guard. The model's metadata (nequip_pol.guards.ranges_metadata, written when
   a checkpoint with recorded ranges is compiled) holds the largest |E| of the training data
   and the smallest distance per species pair. At every force call |E| is compared with
   guard_field x that maximum and every pair of the neighbor list with guard_distance x the
   minimum of its species pair (pairs of species the training data never had closer than its
   cutoff are not checked). The first case of a run is a warning (guard warn) or an error
   (guard error); later ones are counted and the counts printed at the end of the run.
------------------------------------------------------------------------- */

void PairPolBase::guard_read_metadata(const std::string &path)
{
  guard_has_ranges = false;
  guard_announced = false;
  guard_max_field = 0.0;
  guard_pairs.clear();
  auto mf = metadata.find(META_MAX_FIELD);
  if (mf == metadata.end() || mf->second.empty()) return;
  if (!parse_number(mf->second, guard_max_field) || guard_max_field < 0.0)
    error->all(FLERR, "pair_coeff {}: model {} has metadata {} = '{}', not a number >= 0",
               style_name, path, META_MAX_FIELD, mf->second);
  auto md = metadata.find(META_MIN_DISTANCE);
  if (md != metadata.end()) {
    for (auto &item : split_words(md->second)) {
      auto colon = item.rfind(':');
      double d = 0.0;
      if (colon == std::string::npos || colon == 0 || !parse_number(item.substr(colon + 1), d) ||
          d <= 0.0)
        error->all(FLERR,
                   "pair_coeff {}: model {} has metadata {} with entry '{}'; expected "
                   "A-B:distance entries such as O-Ti:1.71",
                   style_name, path, META_MIN_DISTANCE, item);
      guard_pairs.emplace_back(item.substr(0, colon), d);
    }
  }
  guard_has_ranges = true;
}

void PairPolBase::guard_init()
{
  guard_checked = guard_n_field = guard_n_distance = 0;
  guard_warned = false;
  const int n = atom->ntypes;
  guard_thr.assign((size_t) (n + 1) * (n + 1), 0.0);
  std::string checked;
  if (guard_on()) {
    for (int i = 1; i <= n; i++)
      for (int j = 1; j <= n; j++) {
        if (type_mapper.size() <= (size_t) std::max(i, j) || type_mapper[i] < 0 ||
            type_mapper[j] < 0)
          continue;
        std::string a = model_type_names[type_mapper[i]], b = model_type_names[type_mapper[j]];
        std::string key = a < b ? a + "-" + b : b + "-" + a;
        for (auto &p : guard_pairs)
          if (p.first == key) {
            guard_thr[(size_t) i * (n + 1) + j] = guard_distance_factor * p.second;
            if (i <= j && checked.find(" " + key + " ") == std::string::npos)
              checked += fmt::format(" {} {:.3f}", key, p.second);
          }
      }
  }
  if (guard_announced || comm->me != 0) return;
  guard_announced = true;
  if (!guard_has_ranges)
    utils::logmesg(lmp,
                   "{}: model {} has no recorded training range ({} in its metadata): the "
                   "extrapolation guard is off\n",
                   style_name, model_path, META_MAX_FIELD);
  else if (guard_mode == GUARD_OFF)
    utils::logmesg(lmp, "{}: extrapolation guard off (pair_style ... guard off)\n", style_name);
  else if (guard_max_field <= 0.0)
    utils::logmesg(lmp,
                   "{}: extrapolation guard ({}): trained at zero field only (the field acts "
                   "through the learned P, Z*, alpha; |E| is not checked); pairs closer than {} x "
                   "the training minimum (A):{}\n",
                   style_name, guard_mode == GUARD_ERROR ? "error" : "warn",
                   guard_distance_factor, checked.empty() ? " none" : checked);
  else
    utils::logmesg(lmp,
                   "{}: extrapolation guard ({}): |E| above {} x the trained maximum {:.4g} V/A; "
                   "pairs closer than {} x the training minimum (A):{}\n",
                   style_name, guard_mode == GUARD_ERROR ? "error" : "warn", guard_field_factor,
                   guard_max_field, guard_distance_factor, checked.empty() ? " none" : checked);
}

double PairPolBase::largest_field()
{
  // the frame field: the same on every rank
  if (!atomic_field_on)
    return std::sqrt(field[0] * field[0] + field[1] * field[1] + field[2] * field[2]);
  // with a per-atom field, the strongest field an atom sees, over all ranks
  double mine = 0.0, all = 0.0;
  for (int i = 0; i < atom->nlocal; i++) {
    double e2 = 0.0;
    for (int k = 0; k < 3; k++) {
      const double e = field[k] + atomic_field[i][k];
      e2 += e * e;
    }
    mine = std::max(mine, e2);
  }
  MPI_Allreduce(&mine, &all, 1, MPI_DOUBLE, MPI_MAX, world);
  return std::sqrt(all);
}

void PairPolBase::guard_check()
{
  guard_checked++;
  const double e = largest_field();
  // data at zero field only (the usual DFT set: P, Z*, alpha at E = 0): the field acts through
  // the learned response, and no field range was sampled to compare with
  const bool field_out = guard_max_field > 0.0 && e > guard_field_factor * guard_max_field;

  // pair distances on this rank, as a fraction of their threshold; the smallest one over ranks
  struct {
    double ratio;
    int pair;
  } mine = {1.0, -1}, worst = {1.0, -1};
  const int n = atom->ntypes;
  double **x = atom->x;
  const int *type = atom->type;
  for (int ii = 0; ii < list->inum; ii++) {
    const int i = list->ilist[ii];
    const double *thr_i = &guard_thr[(size_t) type[i] * (n + 1)];
    const int *jlist = list->firstneigh[i];
    const int jnum = list->numneigh[i];
    for (int jj = 0; jj < jnum; jj++) {
      const int j = jlist[jj] & NEIGHMASK;
      const double thr = thr_i[type[j]];
      if (thr <= 0.0) continue;
      const double dx = x[j][0] - x[i][0], dy = x[j][1] - x[i][1], dz = x[j][2] - x[i][2];
      const double r2 = dx * dx + dy * dy + dz * dz;
      if (r2 < mine.ratio * mine.ratio * thr * thr) {
        mine.ratio = std::sqrt(r2) / thr;
        mine.pair = type[i] * (n + 1) + type[j];
      }
    }
  }
  MPI_Allreduce(&mine, &worst, 1, MPI_DOUBLE_INT, MPI_MINLOC, world);
  const bool distance_out = worst.pair >= 0;
  if (field_out) guard_n_field++;
  if (distance_out) guard_n_distance++;
  if (!field_out && !distance_out) return;
  if (guard_warned && guard_mode != GUARD_ERROR) return;

  std::string what;
  if (field_out)
    what = fmt::format("|E| = {:.4g} V/A exceeds {} x the trained maximum {:.4g} V/A", e,
                       guard_field_factor, guard_max_field);
  if (distance_out) {
    const int ti = worst.pair / (n + 1), tj = worst.pair % (n + 1);
    std::string a = model_type_names[type_mapper[ti]], b = model_type_names[type_mapper[tj]];
    const double thr = guard_thr[worst.pair];
    if (!what.empty()) what += "; ";
    what += fmt::format("a {} pair at {:.3f} A, closer than {} x the training minimum {:.3f} A",
                        a < b ? a + "-" + b : b + "-" + a, worst.ratio * thr,
                        guard_distance_factor, thr / guard_distance_factor);
  }
  const std::string message =
      fmt::format("pair {}: extrapolating on step {}: {} (results outside the trained range are "
                  "unreliable)",
                  style_name, update->ntimestep, what);
  if (guard_mode == GUARD_ERROR)
    error->all(FLERR, message + "; pair_style ... guard warn only warns");
  guard_warned = true;
  if (comm->me == 0)
    error->warning(FLERR, message + "; further cases are counted silently and reported at the "
                                    "end of the run");
}
