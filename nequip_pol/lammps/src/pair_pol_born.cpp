/* ----------------------------------------------------------------------
   nequip_pol: common base of pair styles allegro/pol and nequip/pol.
   Born charges on demand: whether a step needs Z*, the late request (ensure_born), storing
   them per atom and the reverse communication of the ghosts' Z* to their owners.
------------------------------------------------------------------------- */

#include "pair_pol_base.h"
#include "pair_pol_util.h"

#include "atom.h"
#include "comm.h"
#include "compute.h"
#include "error.h"
#include "output.h"
#include "update.h"

#include <ATen/Tensor.h>
#include <torch/csrc/inductor/aoti_package/model_package_loader.h>

using namespace LAMMPS_NS;

// Z* are computed within the force call when something needs them on this step: always
// without the noborn variant; with it, when a fix efield/born exists (every step) or a dump is
// due on this step and a compute born/atom is scheduled (LAMMPS' compute invocation list,
// Compute::matchstep). Every other request (fix ave/atom, variables, write_dump, ...) is met
// by ensure_born(), which re-runs the full model on the same graph.
bool PairPolBase::born_needed()
{
  if (!loader_nb) return true;
  if (born_fix) return true;
  bool scheduled = false;
  for (auto *c : born_computes)
    if (c->matchstep(update->ntimestep)) scheduled = true;
  return scheduled && output->next_dump_any == update->ntimestep;
}

void PairPolBase::ensure_born(const char *who)
{
  if (born_pending) {
    at::Tensor z = std::move(*born_pending);
    born_pending.reset();
    store_born(z.to(at::kCPU, at::kDouble).contiguous(), last_nnodes);
    return;
  }
  // without the variant every force call computed Z*: born[] holds those of the last one
  if (!born_on_demand()) return;
  if (born_step == update->ntimestep && born_step >= 0) return;
  if (last_step != update->ntimestep || !last_args)
    error->all(FLERR,
               "{}: the pair style was not evaluated on step {} (last on step {}): run 0 first",
               who, update->ntimestep, last_step);
  std::vector<at::Tensor> out;
  try {
    out = loader->run(*last_args);
  } catch (std::exception &e) {
    error->one(FLERR, "pair {}: the model failed on {} nodes: {}", style_name, last_nnodes,
               first_line(e.what()));
  }
  if (out.size() != output_keys.size())
    error->one(FLERR, "pair {}: the model returned {} outputs, its metadata lists {}", style_name,
               out.size(), output_keys.size());
  n_eval_extra++;
  store_born(out[out_born].to(at::kCPU, at::kDouble).contiguous(), last_nnodes);
}

void PairPolBase::store_born(const at::Tensor &zo, int nnodes)
{
  const double *z = zo.data_ptr<double>();
  int nall = atom->nlocal + atom->nghost;
  grow_response(atom->nmax > nall ? atom->nmax : nall);
  const bool remap = !node_atom.empty();
  for (int i = 0; i < nall; i++)
    for (int k = 0; k < 9; k++) born[i][k] = 0.0;
  for (int n = 0; n < nnodes; n++) {
    int i = remap ? node_atom[n] : n;
    for (int k = 0; k < 9; k++) born[i][k] = z[9 * n + k];
  }
  // ghost contributions to their owners (newton on)
  comm->reverse_comm(this);    // collective: every rank, also with no ghost edges
  born_step = update->ntimestep;
}

int PairPolBase::pack_reverse_comm(int n, int first, double *buf)
{
  int m = 0;
  int last = first + n;
  for (int i = first; i < last; i++)
    for (int k = 0; k < 9; k++) buf[m++] = born[i][k];
  return m;
}

void PairPolBase::unpack_reverse_comm(int n, int *list, double *buf)
{
  int m = 0;
  for (int i = 0; i < n; i++) {
    int j = list[i];
    for (int k = 0; k < 9; k++) born[j][k] += buf[m++];
  }
}
