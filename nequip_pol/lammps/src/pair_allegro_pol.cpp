/* ----------------------------------------------------------------------
   nequip_pol: pair style allegro/pol.
   Graph of one MPI rank: nodes = local + ghost atoms, edges i->j for local centers i and
   every neighbor j (local or ghost) within r_max. Forces and Born charges on ghosts are
   reverse-communicated to their owners (newton on); energies, P and alpha are per-rank sums.
------------------------------------------------------------------------- */

#include "pair_allegro_pol.h"

#include "atom.h"
#include "error.h"
#include "force.h"
#include "neigh_list.h"
#include "neighbor.h"

#include <ATen/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>

using namespace LAMMPS_NS;

PairAllegroPol::PairAllegroPol(LAMMPS *lmp) : PairPolBase(lmp)
{
  style_name = "allegro/pol";
}

std::vector<std::string> PairAllegroPol::required_inputs() const
{
  return {"pos", "edge_index", "atom_types"};
}

void PairAllegroPol::init_style()
{
  PairPolBase::init_style();
  if (force->newton_pair == 0)
    error->all(FLERR, "pair allegro/pol requires newton pair on (ghost forces and Born charges "
                      "are reverse-communicated)");
  neighbor->add_request(this, NeighConst::REQ_FULL);
}

int PairAllegroPol::build_inputs(std::unordered_map<std::string, at::Tensor> &inputs)
{
  double **x = atom->x;
  int *type = atom->type;
  int nlocal = atom->nlocal;
  int ntotal = nlocal + atom->nghost;

  // edges i -> j within r_max; only the ghosts that some edge reaches become graph nodes
  // (numbered after the local atoms): the ghost shell of the neighbor list is r_max + skin
  node_index.assign(ntotal, -1);
  for (int i = 0; i < nlocal; i++) node_index[i] = i;
  node_atom.resize(nlocal);
  for (int i = 0; i < nlocal; i++) node_atom[i] = i;
  std::vector<int64_t> src, dst;
  src.reserve((size_t) list->inum * 48);
  dst.reserve((size_t) list->inum * 48);
  for_each_edge([&](int i, int j) {
    if (node_index[j] < 0) {
      node_index[j] = (int) node_atom.size();
      node_atom.push_back(j);
    }
    src.push_back(i);
    dst.push_back(node_index[j]);
  });
  int nnodes = (int) node_atom.size();

  at::Tensor pos = at::empty({nnodes, 3}, at::kDouble);
  at::Tensor types = at::empty({nnodes}, at::kLong);
  double *pos_p = pos.data_ptr<double>();
  int64_t *types_p = types.data_ptr<int64_t>();
  for (int k = 0; k < nnodes; k++) {
    int i = node_atom[k];
    pos_p[3 * k + 0] = x[i][0];
    pos_p[3 * k + 1] = x[i][1];
    pos_p[3 * k + 2] = x[i][2];
    types_p[k] = type_mapper[type[i]];
  }

  int64_t nedges = (int64_t) src.size();
  at::Tensor edge_index = at::empty({2, nedges}, at::kLong);
  int64_t *e_p = edge_index.data_ptr<int64_t>();
  std::copy(src.begin(), src.end(), e_p);
  std::copy(dst.begin(), dst.end(), e_p + nedges);

  inputs["pos"] = pos;
  inputs["edge_index"] = edge_index;
  inputs["atom_types"] = types;
  return nnodes;
}
