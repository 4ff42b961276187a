/* -*- c++ -*- ----------------------------------------------------------
   nequip_pol: compute born/atom: per-atom Born charges Z*_i,ab = dP_a/dR_ib (e), 9 columns
   (row major: xx xy xz yx yy yz zx zy zz) of the last evaluation of pair allegro/pol or
   nequip/pol (ghost contributions already reverse-communicated). Optional keyword
   "dipole yes" adds 3 columns with each atom's share of P (e*A).
------------------------------------------------------------------------- */

#ifdef COMPUTE_CLASS
// clang-format off
ComputeStyle(born/atom,ComputeBornAtom);
// clang-format on
#else

#ifndef LMP_COMPUTE_BORN_ATOM_H
#define LMP_COMPUTE_BORN_ATOM_H

#include "compute.h"

namespace LAMMPS_NS {

class PairPolBase;

class ComputeBornAtom : public Compute {
 public:
  ComputeBornAtom(class LAMMPS *, int, char **);
  ~ComputeBornAtom() override;
  void init() override;
  void compute_peratom() override;
  double memory_usage() override;

 private:
  PairPolBase *pair = nullptr;
  int nmax = 0;
  int with_dipole = 0;
  double **values = nullptr;
};

}    // namespace LAMMPS_NS

#endif
#endif
